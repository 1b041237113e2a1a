import { pgTable, text, timestamp } from 'drizzle-orm/pg-core';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/**
 * The heartbeat of each running graphile-worker pool (jobs/liveness.ts): one row per pool id
 * — graphile-worker's `locked_by` on the jobs the pool runs —, its `seen_at` refreshed every
 * WORKER_HEARTBEAT_S by its process, in the database's clock. A pool silent for
 * WORKER_DEAD_AFTER_S is taken for dead: another worker process releases its jobs
 * (`graphile_worker.force_unlock_workers`) and deletes its row. A pool that stops cleanly
 * deletes its own row.
 */
export const workerHeartbeats = pgTable('worker_heartbeats', {
  workerId: text('worker_id').primaryKey(),
  /** files | thumbnails | main (worker.ts) */
  pool: text('pool').notNull(),
  /** hostname:pid of the process, for the operator. */
  process: text('process').notNull(),
  startedAt: ts('started_at').notNull().defaultNow(),
  seenAt: ts('seen_at').notNull().defaultNow(),
});
