import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startWorker } from '../src/worker.js';
import { ADMIN_TOKEN, createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint, pendingJobs } from './helpers/notify.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

// Nothing lost: a worker killed (SIGKILL) in the middle of a delivery leaves the job locked;
// once graphile-worker frees it (after 4 h, made to pass here through locked_at), the same
// message is delivered with the same webhook-id.
let ctx: TestContext;
let r: Receiver;
let child: ChildProcess | undefined;
beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
});
afterAll(async () => {
  child?.kill('SIGKILL');
  r?.release();
  await ctx.close();
  await r?.close();
});

it('delivers after a worker is killed mid-request, once it restarts', async () => {
  r = await startReceiver((_req, n) => (n === 1 ? 'hang' : { status: 200 }));
  const ep = await createEndpoint(ctx, { url: r.url });
  r.verifyWith = [ep.secret];
  await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 81, connectionId: 810, subscriptions: [{ id: 8100 }] }));

  const script = fileURLToPath(new URL('./helpers/worker-child.ts', import.meta.url));
  child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, DATABASE_URL: ctx.database.url, ADMIN_TOKEN, LINK_SECRET: 'test-link-secret-0123456789', DATA_DIR: ctx.config.dataDir, FETCH_ALLOW_PRIVATE_NETWORKS: '1', LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await r.waitFor(1, 30_000);
  const exited = new Promise((resolve) => child!.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;

  // Killed mid-request: nothing recorded, the job still locked by the dead worker.
  const [msg] = await ctx.deps.db.execute<{ id: string; status: string; attempts: number }>(sql`select id, status, attempts from messages where endpoint_id = ${ep.id}`);
  expect(msg).toMatchObject({ status: 'pending', attempts: 0 });
  // (a first attempt to a healthy endpoint travels in a deliver_messages batch job)
  const [job] = await pendingJobs(ctx, 'deliver_messages');
  expect(job.locked_at).not.toBeNull();

  // Four hours later graphile-worker frees jobs of dead workers.
  await ctx.deps.db.execute(sql`update graphile_worker._private_jobs set locked_at = now() - interval '4 hours 1 minute' where locked_at is not null`);
  const w = await startWorker(ctx.deps, ctx.database.url, { pollInterval: 100, resetLockedIntervalMs: 100 });
  try {
    await r.waitFor(2, 20_000);
    await waitUntil(async () => {
      const [m] = await ctx.deps.db.execute<{ status: string }>(sql`select status from messages where id = ${msg.id}`);
      return m.status === 'succeeded';
    }, 10_000, 'message succeeded');
  } finally {
    await w.stop();
  }
  expect(r.received[1].headers['webhook-id']).toBe(msg.id);
  expect(r.received[0].headers['webhook-id']).toBe(msg.id);
  expect(r.received[1].verified).toEqual([true]);
  const attempts = await ctx.deps.db.execute<{ attempt: number; status_code: number }>(sql`select attempt, status_code from delivery_attempts where message_id = ${msg.id}`);
  expect(attempts).toEqual([{ attempt: 1, status_code: 200 }]);
  expect(await pendingJobs(ctx, 'deliver_messages')).toHaveLength(0);
  expect(await pendingJobs(ctx)).toHaveLength(0);
});
