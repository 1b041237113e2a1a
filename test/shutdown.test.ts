import { spawn } from 'node:child_process';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../src/db/embedded.js';
import { ADMIN_TOKEN, createTestContext, INBOUND_SECRET, type TestContext } from './helpers/context.js';
import { makePdf, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { waitUntil } from './helpers/receiver.js';
import { startServiceProcess, type ServiceProcess } from './helpers/service-process.js';
import { powensHeaders, syncedPayload } from './helpers/webhooks.js';

// The real service (src/main.ts, API and worker in one process): SIGTERM lets the job in
// flight finish before the process exits 0 (issue 2: "SIGTERM drains in-flight requests and jobs").
let ctx: TestContext;
let site: ProviderSite;
beforeAll(async () => {
  ctx = await createTestContext();
  site = await startProviderSite();
});
afterAll(async () => {
  await ctx.close();
  await site.close();
});

it('drains the running job on SIGTERM, then exits 0', async () => {
  const pdf = await makePdf(['Drained bill']);
  let requested = false;
  let output = '';
  site.route('/slow.pdf', async (_req, res) => {
    requested = true;
    // Still downloading when SIGTERM comes: the file is sent once the service is shutting down.
    await waitUntil(async () => output.includes('shutting down'), 30_000, 'SIGTERM to be handled');
    res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf);
  });

  const port = await freePort();
  const main = fileURLToPath(new URL('../src/main.ts', import.meta.url));
  const child = spawn(process.execPath, ['--import', 'tsx', main], {
    env: {
      ...process.env,
      DATABASE_URL: ctx.database.url,
      PORT: String(port),
      DATA_DIR: mkdtempSync(join(tmpdir(), 'docrelay-main-')),
      ADMIN_TOKEN,
      INBOUND_WEBHOOK_SECRET: INBOUND_SECRET,
      LINK_SECRET: 'test-link-secret-0123456789',
      FETCH_ALLOW_PRIVATE_NETWORKS: '1',
      LOG_LEVEL: 'info',
    },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  child.stdout!.on('data', (d) => (output += d));
  child.stderr!.on('data', (d) => (output += d));
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  try {
    await waitUntil(async () => output.includes('worker started') && output.includes('API listening'), 30_000, 'the service to start');

    const path = '/webhooks/powens/CONNECTION_SYNCED';
    const raw = JSON.stringify(syncedPayload({ idWebhookData: 1, userId: 90, connectionId: 900, subscriptions: [{ id: 9000, documents: [{ id: 90000, url: site.url('/slow.pdf') }] }] }));
    const res = await fetch(`http://127.0.0.1:${port}${path}`, { method: 'POST', headers: { ...powensHeaders(INBOUND_SECRET, path, raw), 'content-type': 'application/json' }, body: raw });
    expect(res.status).toBe(200);

    await waitUntil(async () => requested, 20_000, 'the download to start');
    child.kill('SIGTERM');
    expect(await exited).toBe(0);
  } finally {
    child.kill('SIGKILL');
  }
  expect(output).toContain('shutting down');
  const [file] = await ctx.deps.db.execute<{ status: string }>(sql`select status from document_files where document_id = 90000`);
  expect(file.status).toBe('ready');
}, 60_000);

// Issue 14, deploy: a platform kills the process some time after SIGTERM (fly.toml's
// kill_timeout, 120 s), but a download may take minutes. Past SHUTDOWN_TIMEOUT_S the
// download in flight is aborted and its job released — failed with a retryable error,
// not lost — and the process exits; the next worker fetches the file.
it('past SHUTDOWN_TIMEOUT_S, aborts a download that still trickles, releases its job and exits; a new worker completes the file', async () => {
  const pdf = await makePdf(['Released bill']);
  site.route('/trickle.pdf', async (_req, res, hit) => {
    if (hit > 1) return void res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': String(pdf.length) }).end(pdf);
    // The first download never ends: one byte every 200 ms, for as long as it is read.
    res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': String(pdf.length) });
    for (let i = 0; i < pdf.length - 1 && !res.destroyed; i++) {
      res.write(pdf.subarray(i, i + 1));
      await new Promise((r) => setTimeout(r, 200));
    }
  });
  const TIMEOUT_S = 3;
  const first = await startServiceProcess(ctx.database.url, 'all', { SHUTDOWN_TIMEOUT_S: String(TIMEOUT_S) });
  let second: ServiceProcess | undefined;
  try {
    const path = '/webhooks/powens/CONNECTION_SYNCED';
    const raw = JSON.stringify(syncedPayload({ idWebhookData: 2, userId: 91, connectionId: 910, subscriptions: [{ id: 9100, documents: [{ id: 91000, url: site.url('/trickle.pdf') }] }] }));
    const res = await fetch(`${first.baseUrl}${path}`, { method: 'POST', headers: { ...powensHeaders(INBOUND_SECRET, path, raw), 'content-type': 'application/json' }, body: raw });
    expect(res.status).toBe(200);
    await waitUntil(async () => site.hits('/trickle.pdf') === 1, 20_000, 'the download to start');

    const signalled = Date.now();
    first.child.kill('SIGTERM');
    expect(await first.exited).toBe(0);
    const took = (Date.now() - signalled) / 1000;
    expect(took).toBeGreaterThanOrEqual(TIMEOUT_S - 0.5); // it waited for the job first…
    expect(took).toBeLessThan(TIMEOUT_S + 10); // …then did not wait for the download
    expect(first.output()).toContain('shutdown timeout');

    // Released, not lost: the job failed with a retryable error and waits for its next try
    // (the only fetch job: the first test's completed).
    const [job] = await ctx.deps.db.execute<{ attempts: number; max_attempts: number; locked_by: string | null; last_error: string }>(sql`
      select attempts, max_attempts, locked_by, last_error from graphile_worker.jobs
      where task_identifier in ('fetch_document_file', 'fetch_document_files')`);
    expect(job).toMatchObject({ attempts: 1, locked_by: null });
    expect(job.max_attempts).toBeGreaterThan(1);
    const status = async () => (await ctx.deps.db.execute<{ status: string }>(sql`select status from document_files where document_id = 91000`))[0]?.status;
    expect(await status()).toBe('pending');

    second = await startServiceProcess(ctx.database.url, 'worker');
    await waitUntil(async () => (await status()) === 'ready', 45_000, 'the released job to complete on a new worker');
    expect(site.hits('/trickle.pdf')).toBe(2);
  } finally {
    await first.kill();
    await second?.kill();
  }
}, 90_000);
