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
