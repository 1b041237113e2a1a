import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';

/**
 * Jobs that failed for good: graphile-worker keeps a job whose attempts reached its
 * max_attempts in its queue, never to run again, with the error of its last attempt.
 * Read through its public `jobs` view and changed only through its admin functions
 * (`reschedule_jobs`, `complete_jobs`), never its private tables.
 */
export interface FailedJob {
  id: string;
  task: string;
  attempts: number;
  last_error: string | null;
  failed_at: string;
}

const failedJobRow = (r: { id: string; task: string; attempts: number; last_error: string | null; updated_at: Date | string }): FailedJob => ({
  id: String(r.id),
  task: r.task,
  attempts: r.attempts,
  last_error: r.last_error,
  failed_at: new Date(r.updated_at).toISOString(),
});

export async function listFailedJobs(db: Db, limit = 100): Promise<FailedJob[]> {
  const rows = await db.execute<{ id: string; task: string; attempts: number; last_error: string | null; updated_at: Date }>(sql`
    select id::text as id, task_identifier as task, attempts, last_error, updated_at
    from graphile_worker.jobs
    where attempts >= max_attempts and locked_at is null
    order by updated_at desc, id desc
    limit ${limit}`);
  return rows.map(failedJobRow);
}

/** What became of a job the operator acted on. */
export type JobAction = { ok: true; task: string } | { ok: false; reason: 'not_found' | 'running' | 'not_failed' };

async function refusal(db: Db, id: string): Promise<JobAction> {
  const [row] = await db.execute<{ locked: boolean }>(sql`
    select locked_at is not null as locked from graphile_worker.jobs where id = ${id}::bigint`);
  return { ok: false, reason: !row ? 'not_found' : row.locked ? 'running' : 'not_failed' };
}

/** A failed job runs again now, with a fresh count of attempts; other jobs are left as they are. */
export async function retryFailedJob(db: Db, id: string): Promise<JobAction> {
  const [row] = await db.execute<{ task: string }>(sql`
    with failed as (
      select id, task_identifier from graphile_worker.jobs
      where id = ${id}::bigint and attempts >= max_attempts and locked_at is null
    )
    select failed.task_identifier as task
    from graphile_worker.reschedule_jobs(array(select id from failed), run_at := now(), attempts := 0) as j
    join failed on failed.id = j.id`);
  return row ? { ok: true, task: row.task } : refusal(db, id);
}

/** Discard a job: delete it from the queue, whatever its state, unless a worker is running it. */
export async function discardJob(db: Db, id: string): Promise<JobAction> {
  const [row] = await db.execute<{ task: string }>(sql`
    with target as (select id, task_identifier from graphile_worker.jobs where id = ${id}::bigint)
    select target.task_identifier as task
    from graphile_worker.complete_jobs(array(select id from target)) as j
    join target on target.id = j.id`);
  if (row) return { ok: true, task: row.task };
  const r = await refusal(db, id);
  return r.ok ? r : { ok: false, reason: r.reason === 'not_failed' ? 'running' : r.reason };
}
