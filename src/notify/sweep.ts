import { sql } from 'drizzle-orm';
import { enqueueMany } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { failingEndpointQueue, messageJobKey } from '../jobs/keys.js';

/** How late a pending message must be before it counts as stranded. */
export const strandedAfter = '15 minutes';

/**
 * sweep_stranded_messages (cron, every 5 minutes) — the safety net of "nothing lost".
 *
 * Every pending message normally has a job. One case can leave it without: a batch job
 * (deliver_messages) that is running when a newer batch takes its key is marked as out of
 * attempts by graphile-worker's add_jobs, so if that run then crashes it is never retried.
 * A message still pending well after it was due gets a job again (`msg:<id>`, the attempt
 * it is at). A duplicate is harmless: the attempt already made is skipped.
 */
export const sweepStrandedMessages: JobHandlerFactory<'sweep_stranded_messages'> = (deps) => async () => {
  const stranded = await deps.db.execute<{ id: string; attempts: number; endpoint_id: string; failing: boolean }>(sql`
    select m.id, m.attempts, m.endpoint_id, e.failing_since is not null as failing
    from messages m join webhook_endpoints e on e.id = m.endpoint_id
    where m.status = 'pending' and e.svix_endpoint_id is null
      and coalesce(m.next_attempt_at, m.created_at) < now() - ${strandedAfter}::interval
    order by m.created_at
    limit 1000`);
  if (stranded.length === 0) return;
  deps.log.warn({ count: stranded.length }, 'webhook messages without a delivery job: queued again');
  await enqueueMany(
    deps.db,
    'deliver_message',
    stranded.map((m) => ({
      payload: { messageId: m.id, attempt: m.attempts + 1 },
      jobKey: messageJobKey(m.id),
      queueName: m.failing ? failingEndpointQueue(m.endpoint_id) : undefined,
    })),
  );
};
