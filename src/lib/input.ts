import { z } from '@hono/zod-openapi';
import { parseCalendarDate, parseDateTime } from './dates.js';

/**
 * The value types every request schema is built from — inbound webhooks, path and query
 * parameters, admin bodies — so that what a schema accepts is something PostgreSQL stores
 * as it came (CONTRACT.md §2: no input answers a 5xx; it is a 400 naming the field).
 * test/hostile-input.test.ts walks every route with values meant to get past them.
 */

/**
 * Text PostgreSQL stores as it came: no U+0000 (a text column refuses it, and jsonb refuses
 * `\u0000`) and no lone UTF-16 surrogate (it would be written as U+FFFD: silently changed).
 */
const NUL_OR_LONE_SURROGATE = /\u0000|[\ud800-\udbff](?![\udc00-\udfff])|(?<![\ud800-\udbff])[\udc00-\udfff]/;
export const isStorableText = (s: string): boolean => !NUL_OR_LONE_SURROGATE.test(s);
export const text = z.string().refine(isStorableText, { message: 'text must not contain U+0000 or a lone surrogate' });

/** Powens' ids and ours: integers 1 … 2^53 − 1 (beyond that JSON loses precision). */
export const id = z.number().int().min(1).max(Number.MAX_SAFE_INTEGER).openapi({ example: 1 });

/** An id in a path or query string: digits only, 1 … 2^53 − 1. */
export const idString = z
  .string()
  .regex(/^[1-9][0-9]{0,15}$/, 'an id: an integer from 1 to 2^53 − 1')
  .refine((v) => Number.isSafeInteger(Number(v)), 'an id: an integer from 1 to 2^53 − 1')
  .openapi({ example: '1' });

/**
 * A calendar date, `YYYY-MM-DD` (a time after it, as Powens sometimes sends, is dropped),
 * that exists and that PostgreSQL holds: years 0001–9999.
 */
export const calendarDate = text
  .transform((v, ctx) => {
    const d = parseCalendarDate(v);
    if (d === null) ctx.addIssue({ code: 'custom', message: 'not a date (YYYY-MM-DD, a day that exists, years 0001–9999)' });
    return d ?? '';
  })
  .openapi({ type: 'string', format: 'date', example: '2026-11-01' });

/**
 * An instant: ISO 8601 with an offset, or a naive `YYYY-MM-DD[ HH:MM[:SS]]` read as wall-clock
 * time in `timeZone` (Powens sends Paris time). Years 0001–9999 in UTC.
 */
export function dateTime(timeZone: string) {
  return text
    .transform((v, ctx) => {
      const d = parseDateTime(v, timeZone);
      if (d === null) ctx.addIssue({ code: 'custom', message: 'not a datetime (ISO 8601, a time that exists, years 0001–9999)' });
      return d ?? new Date(0);
    })
    .openapi({ type: 'string', format: 'date-time', example: '2026-11-20T08:00:00Z' });
}
