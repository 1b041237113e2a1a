/**
 * Powens sends naive datetimes (`YYYY-MM-DD HH:MM:SS`, Paris time); others send ISO 8601
 * with an offset. These helpers turn either into an instant, and any date-ish value into
 * a calendar date, without a time zone library: Intl knows the zone rules.
 *
 * Only what PostgreSQL can hold and what exists is accepted: years 0001–9999 (ISO year 0000
 * is refused by PostgreSQL, and five-digit years by its parser), real days (no 2026-02-30),
 * and an instant that stays inside those years once turned to UTC.
 */

const NAIVE = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$/;
const WITH_OFFSET = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/** 0001-01-01T00:00:00Z and 10000-01-01T00:00:00Z, in ms. */
const FIRST_INSTANT = utc(1, 1, 1);
const END_INSTANT = utc(10000, 1, 1);

/** Parse a datetime; naive ones are wall-clock time in `timeZone`. Returns null when unparseable. */
export function parseDateTime(value: string, timeZone: string): Date | null {
  const offset = WITH_OFFSET.exec(value);
  if (offset) {
    if (!isValidCalendarDate(+offset[1], +offset[2], +offset[3]) || !isValidTime(+offset[4], +offset[5], +(offset[6] ?? 0))) return null;
    return inRange(new Date(value));
  }
  const m = NAIVE.exec(value);
  if (!m) return null;
  const [y, mo, d, h = '0', mi = '0', s = '0', frac = '0'] = m.slice(1);
  if (!isValidCalendarDate(+y, +mo, +d) || !isValidTime(+h, +mi, +s)) return null;
  const ms = Math.round(Number(`0.${frac}`) * 1000);
  const wall = utc(+y, +mo, +d, +h, +mi, +s, ms);
  return inRange(new Date(wallTimeToUtc(wall, timeZone)));
}

/** The calendar date (`YYYY-MM-DD`) a value names, as written: time and offset are dropped. */
export function parseCalendarDate(value: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:$|[ T])/.exec(value);
  if (!m || !isValidCalendarDate(+m[1], +m[2], +m[3])) return null;
  // The match starts the value and is `YYYY-MM-DD`: its first ten characters.
  return value.length === 10 ? value : value.slice(0, 10);
}

function inRange(d: Date): Date | null {
  const t = d.getTime();
  return Number.isNaN(t) || t < FIRST_INSTANT || t >= END_INSTANT ? null : d;
}

function isValidTime(h: number, mi: number, s: number): boolean {
  return h <= 23 && mi <= 59 && s <= 59;
}

const DAYS_IN_MONTH = [31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31];

/**
 * Whether a day exists in the proleptic Gregorian calendar (JavaScript's and PostgreSQL's),
 * years 0001–9999. Counted, not tried with a Date: a large sync checks two dates per
 * document, and two Dates per check were most of its hand parse (bench/ingest.ts).
 * test/dates.test.ts holds it to the Date round trip it replaces.
 */
export function isValidCalendarDate(y: number, m: number, d: number): boolean {
  if (!(y >= 1 && y <= 9999 && m >= 1 && m <= 12 && d >= 1)) return false;
  const leap = y % 4 === 0 && (y % 100 !== 0 || y % 400 === 0);
  return d <= (m === 2 && leap ? 29 : DAYS_IN_MONTH[m - 1]);
}

/** Date.UTC, without its mapping of years 0–99 to 1900–1999. */
function utc(y: number, mo: number, d: number, h = 0, mi = 0, s = 0, ms = 0): number {
  const dt = new Date(Date.UTC(2000, mo - 1, d, h, mi, s, ms));
  dt.setUTCFullYear(y, mo - 1, d);
  return dt.getTime();
}

/** UTC milliseconds of a wall-clock time in a zone (two passes settle DST edges). */
function wallTimeToUtc(wallMs: number, timeZone: string): number {
  let utcMs = wallMs - zoneOffsetMs(wallMs, timeZone);
  utcMs = wallMs - zoneOffsetMs(utcMs, timeZone);
  return utcMs;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function zoneOffsetMs(utcMs: number, timeZone: string): number {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
      era: 'short',
      year: 'numeric',
      month: '2-digit',
      day: '2-digit',
      hour: '2-digit',
      minute: '2-digit',
      second: '2-digit',
    });
    formatters.set(timeZone, f);
  }
  const parts = Object.fromEntries(f.formatToParts(new Date(utcMs)).map((p) => [p.type, p.value]));
  // Year 1 in a zone east of UTC can be 1 BC in UTC: the era says which.
  const year = parts.era === 'BC' || parts.era === 'B' ? 1 - +parts.year : +parts.year;
  const asUtc = utc(year, +parts.month, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return asUtc - Math.floor(utcMs / 1000) * 1000;
}
