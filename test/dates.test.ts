import fc from 'fast-check';
import { expect, it } from 'vitest';
import { isValidCalendarDate, parseCalendarDate } from '../src/lib/dates.js';

// The day count of lib/dates.ts against what it replaced: a day exists when a Date made of
// it gives it back (proleptic Gregorian, as PostgreSQL's), years 0001–9999.
function existsByDate(y: number, m: number, d: number): boolean {
  if (y < 1 || y > 9999) return false;
  const dt = new Date(Date.UTC(2000, m - 1, d));
  dt.setUTCFullYear(y, m - 1, d);
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d;
}

it('a day exists exactly when a Date round trip gives it back', () => {
  const years = [0, 1, 4, 100, 400, 1582, 1900, 2000, 2024, 2026, 2100, 9996, 9999, 10000];
  for (const y of years) for (let m = 0; m <= 13; m++) for (let d = 0; d <= 32; d++) {
    expect(isValidCalendarDate(y, m, d), `${y}-${m}-${d}`).toBe(existsByDate(y, m, d));
  }
  fc.assert(fc.property(fc.integer({ min: 0, max: 10000 }), fc.integer({ min: 0, max: 13 }), fc.integer({ min: 0, max: 32 }), (y, m, d) => {
    expect(isValidCalendarDate(y, m, d)).toBe(existsByDate(y, m, d));
  }), { numRuns: 20_000 });
});

it('parseCalendarDate gives the date as written, without what follows it', () => {
  expect(parseCalendarDate('2024-02-29')).toBe('2024-02-29');
  expect(parseCalendarDate('2024-02-29 10:00:00')).toBe('2024-02-29');
  expect(parseCalendarDate('2024-02-29T10:00:00+01:00')).toBe('2024-02-29');
  for (const refused of ['2023-02-29', '1900-02-29', '0000-01-01', '2026-13-01', '2026-00-10', '2026-04-31', '2026-11-1', '2026-11-01x', '+02026-11-01', ' 2026-11-01']) {
    expect(parseCalendarDate(refused), refused).toBeNull();
  }
});
