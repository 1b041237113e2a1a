import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { enqueue, enqueueMany } from '../src/jobs/enqueue.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { waitUntil } from './helpers/receiver.js';

// A keyed job must not be lost when a worker locks the job holding that key at the very
// moment it is added (graphile-worker's add_jobs then writes nothing): see jobs/enqueue.ts.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const jobsWith = (payloadFilter: string) =>
  ctx.deps.db.execute<{ key: string | null; locked: boolean; payload: unknown }>(sql`
    select key, locked_at is not null as locked, payload from graphile_worker._private_jobs
    where payload::text like ${`%${payloadFilter}%`} order by id`);

/**
 * Lock the job with `key` in a transaction left open, as a worker's get_job does, while `add`
 * runs; commit once `add` waits on that row. (Locking a job has no public function: this
 * writes `_private_jobs` as graphile-worker itself does.)
 */
async function whileBeingLocked(key: string, add: () => Promise<void>) {
  const worker = await ctx.database.sql.reserve();
  try {
    await worker`begin`;
    const [{ pid }] = await worker<{ pid: number }[]>`select pg_backend_pid() as pid`;
    await worker`update graphile_worker._private_jobs set locked_at = now(), locked_by = 'another-worker' where key = ${key}`;
    const adding = add();
    await waitUntil(async () => {
      const blocked = await ctx.database.sql`select 1 from pg_stat_activity where ${pid}::int = any(pg_blocking_pids(pid))`;
      return blocked.length > 0;
    }, 10_000, 'add_jobs to wait on the locked row');
    await worker`commit`;
    await adding;
  } finally {
    worker.release();
  }
}

it('enqueue adds a new job when the keyed one is locked under it', async () => {
  await enqueue(ctx.deps.db, 'announce_document', { documentId: 1 }, { jobKey: 'race:1' });
  await whileBeingLocked('race:1', () => enqueue(ctx.deps.db, 'announce_document', { documentId: 1 }, { jobKey: 'race:1' }));
  const jobs = await jobsWith('"documentId":1}');
  expect(jobs.map((j) => ({ key: j.key, locked: j.locked }))).toEqual([
    { key: null, locked: true },
    { key: 'race:1', locked: false },
  ]);
});

it('enqueueMany does the same for batch items, which would otherwise be dropped', async () => {
  await enqueueMany(ctx.deps.db, 'deliver_messages', [{ payload: [{ messageId: 'msg_a', attempt: 1 }], jobKey: 'race:batch' }]);
  await whileBeingLocked('race:batch', () =>
    enqueueMany(ctx.deps.db, 'deliver_messages', [{ payload: [{ messageId: 'msg_b', attempt: 1 }], jobKey: 'race:batch' }]),
  );
  expect((await jobsWith('msg_b')).map((j) => ({ key: j.key, locked: j.locked, payload: j.payload }))).toEqual([
    { key: 'race:batch', locked: false, payload: [{ messageId: 'msg_b', attempt: 1 }] },
  ]);
});
