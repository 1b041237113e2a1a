import { sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import type { JobName, JobPayload } from './catalog.js';
import { notifyPoolSql } from './pools.js';

export interface EnqueueOptions {
  /** Deduplicates: a second job with the same key replaces the pending one. */
  jobKey?: string;
  /** 'replace' (default) or 'preserve_run_at' (keep the earlier run time) or 'unsafe_dedupe'. */
  jobKeyMode?: 'replace' | 'preserve_run_at' | 'unsafe_dedupe';
  runAt?: Date;
  /** Jobs of one queue run one at a time, in order. */
  queueName?: string;
  maxAttempts?: number;
  /** Smaller runs first (graphile-worker's default is 0). */
  priority?: number;
}

/**
 * Add a job on the caller's transaction (`graphile_worker.add_job`), so that the row that
 * caused it and the job commit or roll back together: never a row without its job, never
 * a job without its row. A prepared statement (db/prepared.ts): one round trip, where an
 * unnamed one takes two.
 *
 * A keyed job is added again when graphile-worker skipped it: its `add_jobs` first un-keys
 * a job already running, then upserts `… on conflict (key) do update … where locked_at is
 * null`; a worker that locks the existing job between those two steps makes the upsert
 * write nothing (no row returned), and the new job — or, for a batch job, the new items
 * merged into it — would be lost. On the second pass the running job is un-keyed and a
 * new one is inserted, as graphile-worker documents. (Seen in bench/notify.ts: 389 of
 * 2,000 streamed notifications stranded before this.)
 *
 * Jobs of the files and thumbnails pools also notify their pool's channel, in the same
 * statement (jobs/pools.ts): those pools do not wake for graphile-worker's `jobs:insert`.
 * Queue their jobs through here (or notify likewise), or they wait for the next poll.
 */
export async function enqueue<N extends JobName>(
  tx: Tx,
  name: N,
  payload: JobPayload<N>,
  opts: EnqueueOptions = {},
): Promise<void> {
  for (let pass = 1; ; pass++) {
    const [row] = await tx.execute<{ id: string | null }>(sql`
      select (graphile_worker.add_job(
        ${name}::text,
        ${JSON.stringify(payload)}::text::json,
        queue_name := ${opts.queueName ?? null}::text,
        run_at := ${opts.runAt?.toISOString() ?? null}::timestamptz,
        max_attempts := ${opts.maxAttempts ?? null}::int,
        job_key := ${opts.jobKey ?? null}::text,
        priority := ${opts.priority ?? null}::int,
        job_key_mode := ${opts.jobKeyMode ?? null}::text
      )).id${notifyPoolSql(name)}`);
    if (row.id !== null || !opts.jobKey) return;
    if (pass === maxPasses) throw new Error(`job ${name} ${opts.jobKey} could not be added`);
  }
}

/** Passes at adding a keyed job that a worker keeps locking under our feet (see enqueue). */
const maxPasses = 5;

/**
 * Add many jobs of one task in a single statement (the diff queues one per new document
 * and must not make a query per document): graphile-worker's set-based `add_jobs`, which
 * is to `add_job` what a multi-row insert is to a loop (measured: bench/ingest.ts).
 */
export async function enqueueMany<N extends JobName>(
  tx: Tx,
  name: N,
  jobs: { payload: JobPayload<N>; jobKey?: string; queueName?: string; runAt?: Date; priority?: number }[],
  opts: { maxAttempts?: number } = {},
): Promise<void> {
  if (jobs.length === 0) return;
  let rows = jobs.map((j) => ({
    payload: j.payload,
    job_key: j.jobKey ?? null,
    queue_name: j.queueName ?? null,
    run_at: j.runAt?.toISOString() ?? null,
    priority: j.priority ?? null,
  }));
  for (let pass = 1; rows.length > 0; pass++) {
    const written = await tx.execute<{ key: string | null }>(sql`
      select key${notifyPoolSql(name)} from graphile_worker.add_jobs((
        select array_agg(row(${name}::text, j.payload, j.queue_name, j.run_at, ${opts.maxAttempts ?? null}::int, j.job_key, j.priority, null)::graphile_worker.job_spec)
        from json_to_recordset(${JSON.stringify(rows)}::text::json) as j(payload json, job_key text, queue_name text, run_at timestamptz, priority int)
      ))`);
    // Keyed specs that wrote no row were skipped under a worker's lock: add them again (see enqueue).
    const keys = new Set(written.map((w) => w.key));
    rows = rows.filter((r) => r.job_key !== null && !keys.has(r.job_key));
    if (rows.length > 0 && pass === maxPasses) throw new Error(`${rows.length} ${name} jobs could not be added`);
  }
}
