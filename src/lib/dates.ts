/**
 * Powens sends naive datetimes (`YYYY-MM-DD HH:MM:SS`, Paris time); others send ISO 8601
 * with an offset. These helpers turn either into an instant, and any date-ish value into
 * a calendar date, without a time zone library: Intl knows the zone rules.
 */

const NAIVE = /^(\d{4})-(\d{2})-(\d{2})(?:[ T](\d{2}):(\d{2})(?::(\d{2})(?:\.(\d{1,6}))?)?)?$/;
const WITH_OFFSET = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(?::\d{2}(?:\.\d+)?)?(?:Z|[+-]\d{2}:?\d{2})$/i;

/** Parse a datetime; naive ones are wall-clock time in `timeZone`. Returns null when unparseable. */
export function parseDateTime(value: string, timeZone: string): Date | null {
  if (WITH_OFFSET.test(value)) {
    const d = new Date(value);
    return Number.isNaN(d.getTime()) ? null : d;
  }
  const m = NAIVE.exec(value);
  if (!m) return null;
  const [y, mo, d, h = '0', mi = '0', s = '0', frac = '0'] = m.slice(1);
  const ms = Math.round(Number(`0.${frac}`) * 1000);
  const wall = Date.UTC(+y, +mo - 1, +d, +h, +mi, +s, ms);
  if (!isValidCalendarDate(+y, +mo, +d)) return null;
  return new Date(wallTimeToUtc(wall, timeZone));
}

/** The calendar date (`YYYY-MM-DD`) a value names, as written: time and offset are dropped. */
export function parseCalendarDate(value: string): string | null {
  const m = /^(\d{4})-(\d{2})-(\d{2})(?:$|[ T])/.exec(value);
  if (!m || !isValidCalendarDate(+m[1], +m[2], +m[3])) return null;
  return `${m[1]}-${m[2]}-${m[3]}`;
}

function isValidCalendarDate(y: number, m: number, d: number): boolean {
  const dt = new Date(Date.UTC(y, m - 1, d));
  return dt.getUTCFullYear() === y && dt.getUTCMonth() === m - 1 && dt.getUTCDate() === d;
}

/** UTC milliseconds of a wall-clock time in a zone (two passes settle DST edges). */
function wallTimeToUtc(wallMs: number, timeZone: string): number {
  let utc = wallMs - zoneOffsetMs(wallMs, timeZone);
  utc = wallMs - zoneOffsetMs(utc, timeZone);
  return utc;
}

const formatters = new Map<string, Intl.DateTimeFormat>();
function zoneOffsetMs(utcMs: number, timeZone: string): number {
  let f = formatters.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-US', {
      timeZone,
      hourCycle: 'h23',
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
  const asUtc = Date.UTC(+parts.year, +parts.month - 1, +parts.day, +parts.hour, +parts.minute, +parts.second);
  return asUtc - Math.floor(utcMs / 1000) * 1000;
}
