import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import type { WorkerEvents } from 'graphile-worker';
import { enqueue } from '../src/jobs/enqueue.js';
import { enqueueFileFetches } from '../src/jobs/files.js';
import { startWorker, type Worker } from '../src/worker.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { waitUntil } from './helpers/receiver.js';

// Which pool wakes for which new job (jobs/pools.ts, db/worker-pool.ts). The pools poll
// once an hour here: a job that runs at all was started by a notification.

let ctx: TestContext;
let worker: Worker;
const fetches = { files: 0, thumbnails: 0, main: 0 };
const completed: { pool: string; task: string }[] = [];


beforeAll(async () => {
  ctx = await createTestContext({ FILE_CONCURRENCY: '2' });
  worker = await startWorker(ctx.deps, ctx.database.url, { pollInterval: 3_600_000 });
  for (const pool of ['files', 'thumbnails', 'main'] as const) {
    const events = worker.runners[pool].events;
    events.on('worker:getJob:start', () => void fetches[pool]++);
    events.on('job:complete', ({ job }) => void completed.push({ pool, task: job.task_identifier }));
  }
  // Listening: the files and thumbnails pools on their tasks' channels, the main pool on graphile-worker's.
  await waitUntil(async () => {
    const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`
      select count(*)::int as n from pg_stat_activity
      where datname = current_database() and (query like 'UNLISTEN "jobs:insert"; LISTEN "jobs:insert:%' or query like 'LISTEN "jobs:insert"%')`);
    return n === 3;
  }, 20_000, 'three pools listening');
});
afterAll(async () => {
  await worker.stop();
  await ctx.close();
});

const jobsLeft = async () => {
  const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from graphile_worker.jobs`);
  return n;
};

it('starts file jobs and a thumbnail job on their notification, without waiting for a poll', async () => {
  // Two file batches (one statement, add_jobs) wake both slots of the files pool; the
  // documents do not exist, so each job has nothing to do.
  await ctx.deps.db.transaction((tx) => enqueueFileFetches(tx, Array.from({ length: 101 }, (_, i) => 987_000 + i), 0));
  await ctx.deps.db.transaction((tx) => enqueue(tx, 'render_thumbnails', [987_654], { jobKey: 'thumbnails:test' }));
  await waitUntil(async () => (await jobsLeft()) === 0, 20_000, 'file and thumbnail jobs done');
  expect(completed.map((c) => `${c.pool}:${c.task}`).sort()).toEqual(['files:fetch_document_files', 'files:fetch_document_files', 'thumbnails:render_thumbnails']);
});

it('does not wake the files and thumbnails pools for a job of the main pool', async () => {
  const before = { ...fetches };
  const done = completed.length;
  await ctx.deps.db.execute(sql`select graphile_worker.add_job('deliver_messages', '[]'::json)`);
  await waitUntil(async () => completed.length > done && (await jobsLeft()) === 0, 20_000, 'delivery job done');
  expect(completed.slice(done)).toEqual([{ pool: 'main', task: 'deliver_messages' }]);
  expect(fetches.main).toBeGreaterThan(before.main);
  expect({ files: fetches.files, thumbnails: fetches.thumbnails }).toEqual({ files: before.files, thumbnails: before.thumbnails });
});
