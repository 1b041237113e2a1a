import { z } from '@hono/zod-openapi';
import { eq, sql } from 'drizzle-orm';
import { webhookEndpoints } from '../db/schema/index.js';
import type { Tx } from '../db/client.js';
import { enqueueMany } from '../jobs/enqueue.js';
import { messageJobKey } from '../jobs/keys.js';
import { parseDateTime } from '../lib/dates.js';

/**
 * `?since=` of replay and enable: any ISO 8601 date or datetime — `2026-11-20`,
 * `2026-11-20T08:00Z`, `2026-11-20T08:00:00.123+01:00`; one without an offset is UTC.
 */
export const SinceQuery = z
  .string()
  .max(64)
  .refine((v) => parseDateTime(v, 'UTC') !== null, { message: 'an ISO 8601 date or datetime, e.g. 2026-11-20 or 2026-11-20T08:00Z' })
  .optional()
  .openapi({ example: '2026-11-20T08:00Z' });

/** The operator says the receiver works: enabled, its failure run over (its messages run in parallel again). */
export async function enableEndpoint(tx: Tx, endpointId: string) {
  const [row] = await tx
    .update(webhookEndpoints)
    .set({ disabled: false, disabledReason: null, failingSince: null })
    .where(eq(webhookEndpoints.id, endpointId))
    .returning();
  return row ?? null;
}

export const parseSince = (since: string | undefined): Date | null => (since ? parseDateTime(since, 'UTC') : null);

/**
 * Send an endpoint's undelivered messages now (replay, enable): the ones waiting in a
 * retry's backoff (hours, perhaps), whose job is brought forward, and with `failed` those
 * that failed — attempts exhausted, recorded while the endpoint was disabled, or left when
 * it answered 410. Attempts keep counting: a replayed message's next attempt is its next number,
 * so the log never shows two `attempt: 1` rows for one message. Pending messages not in a
 * backoff (not yet tried, or already brought forward by an earlier replay) have a job that
 * runs soon; they are left to it, so nothing is sent twice. `next_attempt_at` becomes now:
 * the stranded-message sweep counts from it, so it leaves a replayed message's job alone. The caller has made the endpoint healthy (enabled, not failing),
 * so the jobs run in no queue, in parallel.
 */
export async function resendUndelivered(tx: Tx, endpointId: string, opts: { since: Date | null; failed: boolean }): Promise<number> {
  const since = opts.since?.toISOString() ?? null;
  const rows = await tx.execute<{ id: string; attempts: number }>(sql`
    update messages set status = 'pending', next_attempt_at = now()
    where endpoint_id = ${endpointId}
      and ((${opts.failed} and status = 'failed') or (status = 'pending' and next_attempt_at > now()))
      and (${since}::timestamptz is null or created_at >= ${since}::timestamptz)
    returning id, attempts`);
  await enqueueMany(tx, 'deliver_message', rows.map((m) => ({ payload: { messageId: m.id, attempt: m.attempts + 1 }, jobKey: messageJobKey(m.id) })));
  return rows.length;
}
