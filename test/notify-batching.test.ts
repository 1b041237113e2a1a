import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, expect, it } from 'vitest';
import { recordEvents, type NewEvent } from '../src/events/record.js';
import { enqueue } from '../src/jobs/enqueue.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint, pendingJobs } from './helpers/notify.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';

// Batched first deliveries (deliver_messages) and the sweep that re-queues messages whose
// job was lost: nothing lost, nothing delivered twice.
let ctx: TestContext;
let r: Receiver;
beforeEach(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  r = await startReceiver();
  const ep = await createEndpoint(ctx, { url: r.url });
  r.verifyWith = [ep.secret];
  await ctx.deps.db.execute(sql`insert into users (id) values (1)`);
});
afterEach(async () => {
  r.release();
  await ctx.close();
  await r.close();
});

const event = (key: string): NewEvent => ({ type: 'subscription.created', dedupeKey: key, userId: 1, connectionId: 1, data: { subscription: { id: 1 } } });
const record = (keys: string[]) => ctx.deps.db.transaction((tx) => recordEvents(tx, keys.map(event)));
const countMessages = async (status: string) =>
  (await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from messages where status = ${status}`))[0].n;

it('fans a burst out into batch jobs of at most 100 messages, each message delivered once', async () => {
  await record(Array.from({ length: 250 }, (_, i) => `burst:${i}`));
  const sizes = (await pendingJobs(ctx, 'deliver_messages')).map((j) => (j.payload as unknown as unknown[]).length);
  expect(sizes.reduce((a, b) => a + b, 0)).toBe(250);
  expect(Math.max(...sizes)).toBeLessThanOrEqual(100);

  await ctx.startWorker();
  await r.waitFor(250);
  await waitUntil(async () => (await countMessages('succeeded')) === 250);
  expect(new Set(r.received.map((g) => g.headers['webhook-id'])).size).toBe(250);
  expect(r.received.every((g) => g.verified[0] === true)).toBe(true);
});

it('events recorded one per transaction join the batch job that waits', async () => {
  for (let i = 0; i < 5; i++) await record([`single:${i}`]);
  const jobs = await pendingJobs(ctx, 'deliver_messages');
  expect(jobs).toHaveLength(1);
  expect(jobs[0].payload as unknown as unknown[]).toHaveLength(5);
});

it('a recording never waits for another transaction holding the batch job: it takes a job of its own', async () => {
  // The first transaction stays open after recording; the second must commit meanwhile
  // (with one key per endpoint it waited on the first's job row until that committed).
  // A first recording makes graphile-worker's task row, which a new database lacks (two
  // transactions adding it at once would wait for each other on that insert).
  await record(['warm-up']);
  await ctx.deps.db.execute(sql`select graphile_worker.complete_jobs(array(select id from graphile_worker.jobs))`);
  let release!: () => void;
  const held = new Promise<void>((r) => (release = r));
  let recorded!: () => void;
  const first = ctx.deps.db.transaction(async (tx) => {
    await recordEvents(tx, [event('open:1')]);
    recorded();
    await held;
  });
  await new Promise<void>((r) => (recorded = r));
  await record(['concurrent:1']);
  release();
  await first;
  const jobs = await pendingJobs(ctx, 'deliver_messages');
  expect(jobs.map((j) => (j.payload as unknown as unknown[]).length)).toEqual([1, 1]);
});

it('re-queues a message whose job was lost, and leaves the ones not late alone', async () => {
  await record(['lost', 'fresh']);
  // Lose every delivery job, and make one message late.
  await ctx.deps.db.execute(sql`select graphile_worker.complete_jobs(array(select id from graphile_worker.jobs))`);
  const [late] = await ctx.deps.db.execute<{ id: string }>(sql`
    update messages set created_at = now() - interval '20 minutes'
    where id = (select m.id from messages m join events e on e.id = m.event_id where e.dedupe_key = 'lost') returning id`);
  await enqueue(ctx.deps.db, 'sweep_stranded_messages', {});
  await ctx.startWorker();
  await r.waitFor(1);
  await waitUntil(async () => (await countMessages('succeeded')) === 1);
  expect(r.received.map((g) => g.headers['webhook-id'])).toEqual([late.id]);
  expect(await countMessages('pending')).toBe(1);
});

it('erasing a connection drops its undelivered messages: nothing about it is sent afterwards', async () => {
  await ctx.deps.db.execute(sql`insert into connections (id, user_id) values (1, 1)`);
  await record(['about-1', 'about-1-too']);
  expect(await countMessages('pending')).toBe(2);
  const res = await ctx.request('DELETE', '/users/1/connections/1');
  expect(res.status).toBe(204);
  expect(await countMessages('pending')).toBe(0);
  await ctx.startWorker();
  // The batch job runs and finds nothing to send.
  await waitUntil(async () => (await pendingJobs(ctx, 'deliver_messages')).length === 0);
  expect(r.received).toHaveLength(0);
});
