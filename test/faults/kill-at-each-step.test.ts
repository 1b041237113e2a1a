import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import postgres from 'postgres';
import { afterAll, afterEach, beforeAll, expect, it } from 'vitest';
import { ADMIN_TOKEN, createTestContext, type TestContext } from '../helpers/context.js';
import { waitForIdleQueue } from '../helpers/jobs.js';
import { createEndpoint } from '../helpers/notify.js';
import { makePdf, startProviderSite, type ProviderSite } from '../helpers/provider.js';
import { startReceiver, waitUntil, type Receiver } from '../helpers/receiver.js';
import { startSmtp, type SmtpSink } from '../helpers/smtp.js';
import { syncedPayload } from '../helpers/webhooks.js';

// kill -9 of the worker at each step of a file job, a delivery batch and an email. The
// worker runs in a process of its own; each step is reached for real — a download that
// hangs, or a row lock held by the test that the worker blocks on — and the process is
// killed there with SIGKILL. Another worker then takes over, and the outcome must be the
// same as without the crash: every file stored and announced once, every message
// delivered at least once under one webhook-id, no mail sent twice that the recorded
// state could have prevented.
let ctx: TestContext;
let site: ProviderSite;
let receiver: Receiver;
let smtp: SmtpSink;
let locker: postgres.Sql;
let child: ChildProcess | undefined;
let secret: string;

beforeAll(async () => {
  site = await startProviderSite();
  receiver = await startReceiver();
  smtp = await startSmtp();
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', SMTP_URL: smtp.url, MAIL_FROM: 'bills@docrelay.test' });
  locker = postgres(ctx.database.url, { max: 4, onnotice: () => {} });
  secret = (await createEndpoint(ctx, { url: receiver.url })).secret;
  receiver.verifyWith = [secret];
});
afterEach(() => {
  child?.kill('SIGKILL');
  receiver.respond = () => ({ status: 200 });
  smtp.beforeAccept = async () => {};
});
afterAll(async () => {
  receiver.release();
  await locker.end({ timeout: 1 });
  await ctx.close();
  await Promise.all([site.close(), receiver.close(), smtp.close()]);
});

/** The real worker (test/helpers/worker-child.ts) in a process of its own. */
function spawnWorker(): ChildProcess {
  const script = fileURLToPath(new URL('../helpers/worker-child.ts', import.meta.url));
  child = spawn(process.execPath, ['--import', 'tsx', script], {
    env: {
      ...process.env,
      DATABASE_URL: ctx.database.url,
      ADMIN_TOKEN,
      LINK_SECRET: 'test-link-secret-0123456789',
      DATA_DIR: ctx.config.dataDir,
      FETCH_ALLOW_PRIVATE_NETWORKS: '1',
      SMTP_URL: smtp.url,
      MAIL_FROM: 'bills@docrelay.test',
      LOG_LEVEL: 'silent',
    },
    stdio: ['ignore', 'ignore', 'inherit'],
  });
  return child;
}

/** A transaction of the test's own that holds the row locks `statement` takes, until released. */
async function hold(statement: string) {
  const conn = await locker.reserve();
  await conn`begin`;
  const [{ pid }] = await conn<{ pid: number }[]>`select pg_backend_pid() as pid`;
  const rows = await conn.unsafe(statement);
  if (rows.length === 0) throw new Error(`nothing to lock: ${statement}`);
  return {
    pid,
    release: async () => {
      await conn`rollback`;
      conn.release();
    },
  };
}

/** Until a session waits on a lock of `pid`: the worker has reached the step that needs it. */
const blockedBy = (pid: number) =>
  waitUntil(async () => {
    const [row] = await ctx.deps.db.execute<{ n: number }>(sql`
      select count(*)::int as n from pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`);
    return row.n > 0;
  }, 30_000, 'the worker to block on the test lock');

/**
 * SIGKILL the worker, end the statements it left blocked on the server (a dead client's
 * statement would otherwise still run once the lock goes), release the test's locks, and
 * free the jobs it held — what graphile-worker does after 4 h, or docrelay's heartbeat
 * within a minute — so that a new worker can take over.
 */
async function killWorker(...held: { pid: number; release(): Promise<void> }[]) {
  const c = child!;
  const exited = new Promise((resolve) => c.once('exit', resolve));
  c.kill('SIGKILL');
  await exited;
  for (const h of held) {
    await ctx.deps.db.execute(sql`select pg_terminate_backend(pid) from pg_stat_activity where ${h.pid} = any(pg_blocking_pids(pid))`);
    await h.release();
  }
  await ctx.deps.db.execute(sql`
    select graphile_worker.force_unlock_workers(array(select distinct locked_by from graphile_worker.jobs where locked_by is not null))`);
}

/** Let a new worker in this process finish whatever the dead one left. */
async function recover() {
  const w = await ctx.startWorker();
  await waitForIdleQueue(ctx.deps.db, undefined, 60_000);
  return w;
}

const announcementsOf = (documentId: number) =>
  receiver.received.filter((r) => {
    const body = JSON.parse(r.body);
    return body.type === 'document.created' && body.data.document.id === documentId;
  });

const fileOf = async (documentId: number) =>
  (await ctx.deps.db.execute<{ status: string; sha256: string | null }>(sql`select status, sha256 from document_files where document_id = ${documentId}`))[0];

/** A sync of one new document whose file is at `path` on the provider site. */
async function syncOneBill(userId: number, documentId: number, path: string) {
  const res = await ctx.sendWebhook(
    'CONNECTION_SYNCED',
    syncedPayload({ userId, connectionId: userId * 10, subscriptions: [{ id: userId * 100, documents: [{ id: documentId, url: site.url(path) }] }] }),
  );
  expect(res.status).toBe(200);
}

/** After recovery: the file is stored once (one blob of its bytes) and announced once (one message). */
async function expectStoredAndAnnouncedOnce(documentId: number, pdf: Buffer) {
  const file = await fileOf(documentId);
  expect(file.status).toBe('ready');
  const { createHash } = await import('node:crypto');
  expect(file.sha256).toBe(createHash('sha256').update(pdf).digest('hex'));
  const [blobs] = await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from blobs where sha256 = ${file.sha256}`);
  expect(blobs.n).toBe(1);
  // Announced once: one message, received at least once and only under its one webhook-id
  // (the worker killed here may have been delivering it, from another of its pools).
  const messages = await ctx.deps.db.execute<{ id: string; status: string }>(sql`
    select m.id, m.status from messages m join events e on e.id = m.event_id
    where e.type = 'document.created' and (e.data->'document'->>'id')::bigint = ${documentId}`);
  expect(messages).toEqual([{ id: expect.any(String), status: 'succeeded' }]);
  const seen = announcementsOf(documentId);
  expect(seen.length).toBeGreaterThanOrEqual(1);
  expect(new Set(seen.map((r) => r.headers['webhook-id']))).toEqual(new Set([messages[0].id]));
  expect(seen.every((r) => r.verified[0] === true)).toBe(true);
}

/** Each step spawns a worker process and waits for real work: more than the default 30 s under load. */
const step = (name: string, fn: () => Promise<void>) => it(name, fn, 120_000);

const fileJobLock = `select 1 from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
  where t.identifier like 'fetch_document_file%' and j.locked_at is not null for update of j`;

step('file job, killed mid-download: the next worker downloads again and the bill is stored and announced once', async () => {
  const pdf = await makePdf(['Bill 9101']);
  site.route('/k1.pdf', (_req, res, hit) => {
    if (hit === 1) {
      // Half the file, then nothing: the worker is killed while it waits for the rest.
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': String(pdf.length) });
      res.write(pdf.subarray(0, pdf.length >> 1));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf);
  });
  await syncOneBill(91, 9101, '/k1.pdf');
  spawnWorker();
  await waitUntil(async () => site.hits('/k1.pdf') === 1, 30_000, 'the download to start');
  await killWorker();
  expect((await fileOf(9101)).status).toBe('pending');

  const w = await recover();
  await w.stop();
  expect(site.hits('/k1.pdf')).toBe(2);
  await expectStoredAndAnnouncedOnce(9101, pdf);
});

step('file job, killed before its result commits: nothing half-stored, the next worker completes it once', async () => {
  const pdf = await makePdf(['Bill 9201']);
  site.route('/k2.pdf', (_req, res) => void res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf));
  await syncOneBill(92, 9201, '/k2.pdf');
  const fileRow = await hold('select 1 from document_files where document_id = 9201 for update');
  spawnWorker();
  await blockedBy(fileRow.pid);
  await killWorker(fileRow);
  expect(await fileOf(9201)).toMatchObject({ status: 'pending', sha256: null });
  expect(announcementsOf(9201)).toHaveLength(0);

  const w = await recover();
  await w.stop();
  await expectStoredAndAnnouncedOnce(9201, pdf);
});

step('file job, killed after its result committed but before the job completed: the rerun changes nothing', async () => {
  const pdf = await makePdf(['Bill 9301']);
  site.route('/k3.pdf', (_req, res) => void res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf));
  await syncOneBill(93, 9301, '/k3.pdf');
  const fileRow = await hold('select 1 from document_files where document_id = 9301 for update');
  spawnWorker();
  await blockedBy(fileRow.pid);
  // The worker holds the job: lock its row, so that completing it (a delete) waits for us.
  const jobRow = await hold(fileJobLock);
  await fileRow.release();
  await blockedBy(jobRow.pid);
  expect((await fileOf(9301)).status).toBe('ready');
  await killWorker(jobRow);

  const w = await recover();
  await w.stop();
  expect(site.hits('/k3.pdf')).toBe(1);
  await expectStoredAndAnnouncedOnce(9301, pdf);
});

step('delivery batch, killed while one request of it hangs: every message delivered, each under its one webhook-id', async () => {
  const docs = [9401, 9402, 9403, 9404, 9405];
  const before = receiver.received.length;
  // Messages of this batch: the third request hangs, the others are answered.
  receiver.respond = (_req, n) => (n - before === 3 ? 'hang' : { status: 200 });
  const res = await ctx.sendWebhook(
    'CONNECTION_SYNCED',
    syncedPayload({ userId: 94, connectionId: 940, subscriptions: [{ id: 9400, documents: docs.map((id) => ({ id })) }] }),
  );
  expect(res.status).toBe(200);
  spawnWorker();
  await receiver.waitFor(before + docs.length, 30_000);
  // Answers are recorded once the batch's requests are all back: none is, yet.
  const [recorded] = await ctx.deps.db.execute<{ n: number }>(sql`
    select count(*)::int as n from delivery_attempts a join messages m on m.id = a.message_id
    join events e on e.id = m.event_id where e.user_id = 94`);
  await killWorker();
  receiver.respond = () => ({ status: 200 });

  const w = await recover();
  await w.stop();
  // A batch job that was running when newer messages took its key is marked out of attempts
  // by graphile-worker (add_jobs): killed, it is not retried, and its messages wait for the
  // stranded-message sweep (notify/sweep.ts, every 5 min for messages 15 min late). Let
  // those 15 minutes pass, and run the sweep now.
  await ctx.deps.db.execute(sql`update messages set created_at = created_at - interval '16 minutes' where status = 'pending'`);
  await ctx.deps.db.execute(sql`select graphile_worker.add_job('sweep_stranded_messages', '{}'::json)`);
  const w2 = await recover();
  await w2.stop();
  const messages = await ctx.deps.db.execute<{ id: string; status: string; document_id: number }>(sql`
    select m.id, m.status, (e.data->'document'->>'id')::int as document_id from messages m join events e on e.id = m.event_id
    where e.user_id = 94 and e.type = 'document.created'`);
  const all = await ctx.deps.db.execute<{ status: string }>(sql`select m.status from messages m join events e on e.id = m.event_id where e.user_id = 94`);
  expect(all.map((m) => m.status)).toEqual(all.map(() => 'succeeded'));
  expect(messages.map((m) => m.document_id).sort()).toEqual(docs);
  for (const m of messages) {
    expect(m.status).toBe('succeeded');
    const copies = announcementsOf(m.document_id);
    expect(copies.length).toBeGreaterThanOrEqual(1);
    // At least once, and always under the message's one id.
    expect(new Set(copies.map((c) => c.headers['webhook-id']))).toEqual(new Set([m.id]));
  }
  // The hanging request's batch was not recorded when the worker died.
  expect(recorded.n).toBeLessThan(all.length);
  const attempts = await ctx.deps.db.execute<{ message_id: string; n: number }>(sql`
    select a.message_id, count(*)::int as n from delivery_attempts a join messages m on m.id = a.message_id
    join events e on e.id = m.event_id where e.user_id = 94 group by 1`);
  expect(attempts.every((a) => a.n === 1)).toBe(true);
});

step('delivery, killed after the answer was recorded but before the job completed: not sent again', async () => {
  const before = receiver.received.length;
  let jobRow: Awaited<ReturnType<typeof hold>> | undefined;
  receiver.respond = (req, _n, res) => {
    if (JSON.parse(req.body).type !== 'document.created') return { status: 200 };
    // Lock the running delivery job's row first, so that completing it waits for the test.
    void hold(`select 1 from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
      where t.identifier in ('deliver_messages', 'deliver_message') and j.locked_at is not null for update of j`).then((h) => {
      jobRow = h;
      res.writeHead(200).end('ok');
    });
  };
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 95, connectionId: 950, subscriptions: [{ id: 9500, documents: [{ id: 9501 }] }] }));
  expect(res.status).toBe(200);
  spawnWorker();
  await waitUntil(async () => jobRow, 60_000, 'the job row locked');
  await blockedBy(jobRow!.pid);
  const [msg] = await ctx.deps.db.execute<{ id: string; status: string }>(sql`
    select m.id, m.status from messages m join events e on e.id = m.event_id where e.user_id = 95 and e.type = 'document.created'`);
  expect(msg.status).toBe('succeeded');
  receiver.respond = () => ({ status: 200 });
  await killWorker(jobRow!);

  const w = await recover();
  await w.stop();
  expect(announcementsOf(9501)).toHaveLength(1);
  expect(announcementsOf(9501)[0].headers['webhook-id']).toBe(msg.id);
});

step('email, killed after the mail was recorded sent but before the job completed: not mailed again', async () => {
  await ctx.request('POST', '/users/96/token');
  expect((await ctx.request('PUT', '/users/96/email-delivery', { body: { to: 'ida@example.com' } })).status).toBe(200);
  let jobRow: Awaited<ReturnType<typeof hold>> | undefined;
  smtp.beforeAccept = async () => {
    jobRow = await hold(`select 1 from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
      where t.identifier = 'send_document_email' and j.locked_at is not null for update of j`);
  };
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 96, connectionId: 960, subscriptions: [{ id: 9600, documents: [{ id: 9601 }] }] }));
  expect(res.status).toBe(200);
  spawnWorker();
  await waitUntil(async () => jobRow, 30_000, 'the mail accepted');
  await blockedBy(jobRow!.pid);
  const status = async () =>
    (await ctx.deps.db.execute<{ status: string; attempts: number; possible_duplicate: boolean }>(sql`
      select status, attempts, possible_duplicate from email_deliveries where document_id = 9601`))[0];
  expect(await status()).toMatchObject({ status: 'sent', attempts: 1 });
  smtp.beforeAccept = async () => {};
  await killWorker(jobRow!);

  const w = await recover();
  await w.stop();
  expect(smtp.mails.filter((m) => m.messageId === '<document-9601.user-96@docrelay>')).toHaveLength(1);
  expect(await status()).toMatchObject({ status: 'sent', attempts: 1, possible_duplicate: false });
});
