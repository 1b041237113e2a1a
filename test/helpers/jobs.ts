import { sql } from 'drizzle-orm';
import type { Db } from '../../src/db/client.js';
import { sqlArray } from '../../src/db/arrays.js';
import { waitUntil } from './receiver.js';

/**
 * Queue helpers on graphile-worker's public interface: its `jobs` view and its
 * `reschedule_jobs` function (the view has no payload column: tests that read payloads
 * still read `_private_jobs`).
 */

/**
 * Wait until no job of `tasks` (of any task when omitted) is running or due: whatever the
 * worker was going to do now has been done, so a test can then assert that nothing more
 * happened. A job that queues a follow-up commits it before it completes, so the count
 * never drops to zero in between. Jobs due later (retries) are not waited for.
 */
export async function waitForIdleQueue(db: Db, tasks?: string[], timeoutMs = 20_000): Promise<void> {
  const ofTasks = tasks ? sql`and task_identifier = any(${sqlArray(tasks, 'text')})` : sql``;
  await waitUntil(
    async () => {
      const [{ n }] = await db.execute<{ n: number }>(sql`
        select count(*)::int as n from graphile_worker.jobs
        where (locked_at is not null or (run_at <= now() and attempts < max_attempts)) ${ofTasks}`);
      return n === 0;
    },
    timeoutMs,
    `no ${tasks?.join(', ') ?? ''} job running or due`,
  );
}

/**
 * "Time passes": the waiting (unlocked) jobs that `where` selects from the `jobs` view
 * become due now, and get `maxAttempts` when given. Returns how many were moved.
 */
export async function rescheduleNow(db: Db, where: ReturnType<typeof sql>, opts: { maxAttempts?: number } = {}): Promise<number> {
  const rows = await db.execute<{ id: string }>(sql`
    select id from graphile_worker.reschedule_jobs(
      array(select id from graphile_worker.jobs where locked_at is null and ${where}),
      run_at := now(), max_attempts := ${opts.maxAttempts ?? null}::int)`);
  return rows.length;
}

/**
 * The fetch_document_files batch jobs that hold this document (the public view has no
 * payload: read from `_private_jobs`, as helpers/notify.ts does).
 */
export async function fileJobsOf(db: Db, documentId: number) {
  return db.execute<{ id: string; attempts: number; last_error: string | null; run_at: Date; locked_at: string | null; priority: number; queue_name: string | null }>(sql`
    select j.id, j.attempts, j.last_error, j.run_at, j.locked_at::text, j.priority, j.queue_name
    from graphile_worker.jobs j join graphile_worker._private_jobs p using (id)
    where j.task_identifier = 'fetch_document_files' and p.payload::jsonb @> ${JSON.stringify([documentId])}::jsonb
    order by j.id`);
}
