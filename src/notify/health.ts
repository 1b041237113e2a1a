import { z } from '@hono/zod-openapi';
import { sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { sqlArray } from '../db/arrays.js';

/** The window of `success_rate`. */
export const healthWindowHours = 24;

export const HealthSchema = z
  .object({
    success_rate: z.number().min(0).max(1).nullable().openapi({ description: `share of 2xx among the attempts of the last ${healthWindowHours} h; null without any` }),
    last_success_at: z.string().nullable().openapi({ description: 'the last 2xx answer, however long ago' }),
    consecutive_failures: z.number().int().openapi({ description: 'failed attempts since the last success' }),
    disabled_reason: z.string().nullable().openapi({ description: "'gone' (410), 'failing_for_5_days', or null" }),
  })
  .openapi('EndpointHealth');
export type Health = z.infer<typeof HealthSchema>;

export const noHealthYet = (disabledReason: string | null = null): Health => ({
  success_rate: null,
  last_success_at: null,
  consecutive_failures: 0,
  disabled_reason: disabledReason,
});

/**
 * The health of endpoints, from their delivery log (one statement for any number). Each
 * part reads the `(endpoint_id, at)` index: the window's attempts, the newest success (a
 * backward scan that stops at it), and the attempts after it.
 */
export async function endpointHealth(db: Tx, endpoints: { id: string; disabledReason: string | null }[]): Promise<Map<string, Health>> {
  const out = new Map(endpoints.map((e) => [e.id, noHealthYet(e.disabledReason)]));
  if (endpoints.length === 0) return out;
  const rows = await db.execute<{ id: string; attempts: number; successes: number; last_success_ms: string | null; failures: number }>(sql`
    select e.id, w.attempts, w.successes, extract(epoch from ls.at) * 1000 as last_success_ms, cf.failures
    from unnest(${sqlArray(endpoints.map((e) => e.id), 'text')}) as e(id)
    cross join lateral (
      select count(*)::int as attempts, (count(*) filter (where a.status_code between 200 and 299))::int as successes
      from delivery_attempts a
      where a.endpoint_id = e.id and a.at > now() - ${`${healthWindowHours} hours`}::interval
    ) w
    left join lateral (
      select a.at from delivery_attempts a
      where a.endpoint_id = e.id and a.status_code between 200 and 299
      order by a.at desc limit 1
    ) ls on true
    cross join lateral (
      select count(*)::int as failures from delivery_attempts a
      where a.endpoint_id = e.id and a.at > coalesce(ls.at, '-infinity'::timestamptz)
    ) cf`);
  for (const r of rows) {
    const h = out.get(r.id)!;
    h.success_rate = r.attempts > 0 ? Math.round((r.successes / r.attempts) * 1000) / 1000 : null;
    h.last_success_at = r.last_success_ms === null ? null : new Date(Number(r.last_success_ms)).toISOString();
    h.consecutive_failures = r.failures;
  }
  return out;
}
