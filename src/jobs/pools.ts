import { sql, type SQL } from 'drizzle-orm';
import type { JobName } from './catalog.js';

/**
 * The worker's graphile-worker pools (worker.ts), each with its own slots, so that no kind
 * of work holds the slots of another:
 * - files (FILE_CONCURRENCY): a provider that trickles its bytes holds a slot for up to
 *   FILE_DOWNLOAD_TIMEOUT_S, and eight of them must not stop deliveries, mails and
 *   re-syncs (issue 9);
 * - thumbnails (one slot: PDF thumbnails are drawn by one thread), off the announcement's
 *   path, so a backlog of them delays no file and no bill;
 * - main (WORKER_CONCURRENCY): every other task, and the periodic ones.
 */
export const poolTasks = {
  files: ['fetch_document_files', 'fetch_document_file'],
  thumbnails: ['render_thumbnails'],
} as const satisfies Record<string, readonly JobName[]>;
export type NamedPool = keyof typeof poolTasks;

/**
 * The channel that wakes a named pool for its new jobs. graphile-worker's own `jobs:insert`
 * carries a count and no task, so every pool listening to it woke for every job added and
 * ran a job fetch — the files and thumbnails pools for each delivery and announcement they
 * cannot run (on the streamed notification bench, 4,000 of 7,100 fetches for 2,000 events
 * found nothing). The named pools listen to their channel instead (db/worker-pool.ts), and
 * whatever queues their jobs notifies it in the same statement (jobs/enqueue.ts).
 */
export const poolChannel = (pool: NamedPool) => `jobs:insert:${pool}`;

const poolOf = (task: JobName): NamedPool | undefined =>
  (Object.keys(poolTasks) as NamedPool[]).find((pool) => (poolTasks[pool] as readonly JobName[]).includes(task));

/**
 * `, pg_notify(…)` for the select list of a statement that adds jobs of `task`, one row per
 * job: wakes the task's named pool, if it has one, for that many new jobs — once, on the
 * first row, with graphile-worker's payload (`r` keeps PostgreSQL from folding two
 * notifications of one transaction into one). Empty for the main pool's tasks, which
 * graphile-worker's `jobs:insert` wakes.
 */
export function notifyPoolSql(task: JobName): SQL {
  const pool = poolOf(task);
  if (!pool) return sql``;
  return sql`, case when row_number() over () = 1
    then pg_notify(${poolChannel(pool)}::text, '{"r":' || random()::text || ',"count":' || (count(*) over ())::text || '}') end as notified`;
}
