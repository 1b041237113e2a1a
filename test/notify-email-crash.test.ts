import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startWorker } from '../src/worker.js';
import { ADMIN_TOKEN, createTestContext, type TestContext } from './helpers/context.js';
import { waitUntil } from './helpers/receiver.js';
import { startSmtp, type SmtpSink } from './helpers/smtp.js';
import { syncedPayload } from './helpers/webhooks.js';

// Email, nothing lost and nothing silently doubled: each attempt is recorded before the SMTP
// exchange, so a worker killed after the SMTP server accepted a mail but before the `sent`
// record leaves the row `sending`; the retry sends again with the same Message-ID and the
// API says the recipient may hold two copies. A real SMTP server counts the mails.
let ctx: TestContext;
let smtp: SmtpSink;
let child: ChildProcess | undefined;
let locker: postgres.Sql | undefined;
beforeAll(async () => {
  smtp = await startSmtp();
  ctx = await createTestContext({ SMTP_URL: smtp.url, MAIL_FROM: 'bills@docrelay.test' });
});
afterAll(async () => {
  child?.kill('SIGKILL');
  await locker?.end({ timeout: 1 });
  await ctx.close();
  await smtp.close();
});

const row = async () =>
  (await ctx.deps.db.execute<{ status: string; attempts: number; possible_duplicate: boolean }>(sql`
    select status, attempts, possible_duplicate from email_deliveries where document_id = 83000`))[0];

it('records the attempt before sending, and flags the mail resent after a crash between acceptance and record', async () => {
  await ctx.request('POST', '/users/83/token');
  expect((await ctx.request('PUT', '/users/83/email-delivery', { body: { to: 'gil@example.com' } })).status).toBe(200);
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 83, connectionId: 830, subscriptions: [{ id: 8300, documents: [{ id: 83000 }] }] }))).status).toBe(200);

  // The first DATA: the attempt is on record already; the row is then locked so that the
  // worker, once the server has accepted the mail, blocks on writing `sent` — and is killed there.
  locker = postgres(ctx.database.url, { max: 1, onnotice: () => {} });
  let release!: () => void;
  const held = new Promise<void>((resolve) => (release = resolve));
  let lockTaken!: () => void;
  const locked = new Promise<void>((resolve) => (lockTaken = resolve));
  let seenBeforeAccept: Awaited<ReturnType<typeof row>> | undefined;
  smtp.beforeAccept = async (n) => {
    if (n !== 1) return;
    seenBeforeAccept = await row();
    void locker!.begin(async (tx) => {
      await tx`select 1 from email_deliveries where document_id = 83000 for update`;
      lockTaken();
      await held;
    });
    await locked;
  };

  const script = fileURLToPath(new URL('./helpers/worker-child.ts', import.meta.url));
  child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: { ...process.env, DATABASE_URL: ctx.database.url, ADMIN_TOKEN, LINK_SECRET: 'test-link-secret-0123456789', DATA_DIR: ctx.config.dataDir, SMTP_URL: smtp.url, MAIL_FROM: 'bills@docrelay.test', LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  await waitUntil(async () => smtp.mails.length === 1, 30_000, 'the first mail accepted');
  expect(seenBeforeAccept).toMatchObject({ status: 'sending', attempts: 1, possible_duplicate: false });
  // The worker now waits on the row lock to record `sent`.
  await waitUntil(async () => {
    const [b] = await ctx.deps.db.execute<{ n: number }>(sql`
      select count(*)::int as n from pg_stat_activity where cardinality(pg_blocking_pids(pid)) > 0 and datname = current_database()`);
    return b.n > 0;
  }, 10_000, 'the worker blocked on the row');
  const exited = new Promise((resolve) => child!.once('exit', resolve));
  child.kill('SIGKILL');
  await exited;
  // Its blocked statement would still run on the server once the lock goes: end that session too.
  await ctx.deps.db.execute(sql`
    select pg_terminate_backend(pid) from pg_stat_activity where cardinality(pg_blocking_pids(pid)) > 0 and datname = current_database()`);
  release();
  expect(await row()).toMatchObject({ status: 'sending', attempts: 1 });

  // Graphile-worker frees the dead worker's job (after 4 h, made to pass here); the retry sends again.
  await ctx.deps.db.execute(sql`update graphile_worker._private_jobs set locked_at = now() - interval '4 hours 1 minute' where locked_at is not null`);
  const w = await startWorker(ctx.deps, ctx.database.url, { pollInterval: 100, resetLockedIntervalMs: 100 });
  try {
    await waitUntil(async () => (await row())?.status === 'sent', 20_000, 'sent');
  } finally {
    await w.stop();
  }
  const copies = smtp.mails.filter((m) => m.messageId === '<document-83000.user-83@docrelay>');
  expect(copies).toHaveLength(2);
  expect(await row()).toMatchObject({ status: 'sent', attempts: 2, possible_duplicate: true });
  const api = await (await ctx.request('GET', '/users/83/email-delivery/mails')).json();
  expect(api.mails).toEqual([
    expect.objectContaining({ document_id: 83000, message_id: '<document-83000.user-83@docrelay>', status: 'sent', attempts: 2, possible_duplicate: true }),
  ]);
});
