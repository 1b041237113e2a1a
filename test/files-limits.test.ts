import { spawn, type ChildProcess } from 'node:child_process';
import { fileURLToPath } from 'node:url';
import { sql } from 'drizzle-orm';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { sweepStuckFiles } from '../src/files/sweep.js';
import { ADMIN_TOKEN, createTestContext, type TestContext } from './helpers/context.js';
import { makeHugeImagePdf, makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { fileJobsOf, waitForIdleQueue } from './helpers/jobs.js';
import { waitUntil } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

// Files that explode, against the real worker in a process of its own, on a small machine:
// its data segment (every heap, buffer and native allocation) is capped at 3 GiB.

let ctx: TestContext;
let site: ProviderSite;
const children: ChildProcess[] = [];

beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  site = await startProviderSite();
});
afterEach(() => {
  for (const c of children.splice(0)) c.kill('SIGKILL');
});
afterAll(async () => {
  await ctx.close();
  await site.close();
});

/** The real worker (test/helpers/worker-child.ts) under `ulimit -d` (KiB). */
function startWorkerProcess(dataLimitKb = 3 * 1024 * 1024) {
  const script = fileURLToPath(new URL('./helpers/worker-child.ts', import.meta.url));
  const child = spawn('sh', ['-c', `ulimit -d ${dataLimitKb} && exec "$0" "$@"`, process.execPath, '--import', 'tsx', script], {
    env: { ...process.env, DATABASE_URL: ctx.database.url, ADMIN_TOKEN, LINK_SECRET: 'test-link-secret-0123456789', DATA_DIR: ctx.config.dataDir, FETCH_ALLOW_PRIVATE_NETWORKS: '1', LOG_LEVEL: 'silent' },
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  children.push(child);
  const exited = new Promise<number | null>((resolve) => child.once('exit', (code) => resolve(code)));
  return { child, exited };
}

let nextId = 15_000;
const id = () => ++nextId;
async function addDocument(userId: number, path: string) {
  const d = id();
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId, connectionId: id(), subscriptions: [{ id: id(), documents: [{ id: d, url: site.url(path) }] }] }));
  expect(res.status).toBe(200);
  return d;
}
const documentOf = async (u: number, d: number) => (await ctx.request('GET', `/users/${u}/documents/${d}`)).json();

describe('a PDF that explodes when drawn', () => {
  it('ends ready without a thumbnail, and the worker goes on with the next file', async () => {
    const huge = await makeHugeImagePdf(); // one 30000 × 30000 image: 2.7 GB decoded
    expect(huge.length).toBeLessThan(4_000_000);
    site.route('/huge.pdf', send(huge, 'application/pdf'));
    site.route('/next.pdf', send(await makePdf(['The next bill']), 'application/pdf'));
    const { child, exited } = startWorkerProcess();
    let died: number | null | undefined;
    void exited.then((code) => (died = code));

    const u = id();
    const h = await addDocument(u, '/huge.pdf');
    const settled = async (d: number) => {
      if (died !== undefined) throw new Error(`the worker died (exit code ${died})`);
      const doc = await documentOf(u, d);
      return doc.file.status !== 'pending' && doc;
    };
    const hugeDoc = await waitUntil(() => settled(h), 90_000, 'the huge PDF settled');
    expect(hugeDoc.file).toMatchObject({ status: 'ready', content_type: 'application/pdf', size: huge.length });

    // Its thumbnail is drawn after (render_thumbnails), and the next file's after it.
    const n = await addDocument(u, '/next.pdf');
    const next = await waitUntil(async () => (await settled(n))?.thumb_url && documentOf(u, n), 90_000, 'the next PDF with its thumbnail');
    expect(next.file.status).toBe('ready');
    // The huge PDF's thumbnail job ran first (one thumbnail slot) and ended without a thumbnail.
    await waitForIdleQueue(ctx.database.db, ['render_thumbnails'], 30_000);
    expect((await documentOf(u, h)).thumb_url).toBeNull();
    expect(child.exitCode).toBeNull(); // the same worker process
  }, 180_000);
});

describe('a file whose job keeps dying', () => {
  it('is settled failed by the sweep, and still announced', async () => {
    let requests = 0;
    site.route('/hangs.pdf', () => void requests++); // never answers: the worker is killed mid-download
    const u = id();
    const d = await addDocument(u, '/hangs.pdf');
    const fileJob = async () => (await fileJobsOf(ctx.database.db, d))[0];
    const fileRow = async () =>
      (await ctx.database.db.execute<{ attempts: number; claimed_at: string | null }>(
        sql`select attempts, claimed_at::text from document_files where document_id = ${d}`,
      ))[0];

    for (let attempt = 1; attempt <= 2; attempt++) {
      const { child, exited } = startWorkerProcess();
      await waitUntil(async () => requests >= attempt, 30_000, `download attempt ${attempt}`);
      child.kill('SIGKILL');
      await exited;
      const job = await fileJob();
      expect(job).toMatchObject({ attempts: attempt });
      expect(job.locked_at).not.toBeNull(); // held by the dead worker
      // The file's own record of its tries: this one began and never ended.
      expect(await fileRow()).toMatchObject({ attempts: attempt });
      expect((await fileRow()).claimed_at).not.toBeNull();
      // graphile-worker frees a dead worker's jobs after 4 hours (reset_locked): made to pass.
      if (attempt === 1) {
        await ctx.database.db.execute(sql`update graphile_worker._private_jobs set locked_at = null, locked_by = null, run_at = now() where id = ${job.id}`);
      }
    }
    const sweep = sweepStuckFiles(ctx.deps);
    const helpers = { job: { attempts: 1, max_attempts: 1 } } as unknown as JobHelpers;
    await sweep({}, helpers); // begun minutes ago only: a live worker could still be at it
    expect((await documentOf(u, d)).file.status).toBe('pending');

    await ctx.database.db.execute(sql`update document_files set claimed_at = now() - interval '31 minutes' where document_id = ${d}`);
    await sweep({}, helpers);
    const doc = await documentOf(u, d);
    expect(doc.file.status).toBe('failed');
    expect(doc.file.error).toMatch(/stopped 2 times without finishing/);
    const [announce] = await ctx.database.db.execute<{ task_identifier: string }>(
      sql`select task_identifier from graphile_worker.jobs where key = ${`announce:${d}`}`,
    );
    expect(announce?.task_identifier).toBe('announce_document');
  }, 120_000);
});
