import { sql } from 'drizzle-orm';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FILE_MAX_ATTEMPTS, fetchDocumentFile } from '../src/files/tasks.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { waitUntil } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

// The fetch_document_file handler run by hand (no worker in this file), to look at each
// attempt: what it leaves behind when it fails half way, what a re-run does, and that
// the announcement is queued in the same transaction as the final status.

let ctx: TestContext;
let site: ProviderSite;
let pdf: Buffer;
let handler: ReturnType<typeof fetchDocumentFile>;

beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  site = await startProviderSite();
  pdf = await makePdf(['Bill for the job tests'], { padTo: 200_000 });
  handler = fetchDocumentFile(ctx.deps);
});
afterAll(async () => {
  await ctx.close();
  await site.close();
});

let nextId = 9000;
const id = () => ++nextId;
/** One attempt of the job, as graphile-worker would make it. */
const attempt = (documentId: number, attempts = 1, maxAttempts = 25) =>
  handler({ documentId }, { job: { attempts, max_attempts: maxAttempts } } as unknown as JobHelpers);

async function addDocument(url: string | null, connectionId = id()) {
  const u = id(), d = id();
  const res = await ctx.sendWebhook(
    'CONNECTION_SYNCED',
    syncedPayload({ userId: u, connectionId, subscriptions: [{ id: id(), documents: [{ id: d, url }] }] }),
  );
  expect(res.status).toBe(200);
  return { u, d, c: connectionId };
}
const fileRow = async (d: number) =>
  (await ctx.database.db.execute<{ status: string; error: string | null; sha256: string | null }>(
    sql`select status, error, sha256 from document_files where document_id = ${d}`,
  ))[0];
const announceJob = async (d: number) =>
  (await ctx.database.db.execute<{ task_identifier: string; revision: number }>(
    sql`select task_identifier, revision from graphile_worker.jobs where key = ${`announce:${d}`}`,
  ))[0];
const blobTotal = async () => Number((await ctx.database.db.execute<{ n: string }>(sql`select count(*) as n from blobs`))[0].n);

describe('fetch_document_file', () => {
  it('settles the file and queues its announcement together; a second run changes nothing', async () => {
    site.route('/once.pdf', send(pdf, 'application/pdf'));
    const { d } = await addDocument(site.url('/once.pdf'));
    expect(await announceJob(d)).toBeUndefined();
    await attempt(d);
    expect((await fileRow(d)).status).toBe('ready');
    expect(await announceJob(d)).toEqual({ task_identifier: 'announce_document', revision: 0 });
    await attempt(d, 2); // e.g. the worker died after the commit, before completing the job
    expect(site.hits('/once.pdf')).toBe(1);
    expect((await announceJob(d))?.revision).toBe(0); // not queued again
  });

  it('leaves nothing behind when the connection drops mid-download, and the retry completes', async () => {
    site.route('/cut.pdf', (req, res, hit) => {
      if (hit > 1) return send(pdf, 'application/pdf')(req, res, hit);
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': String(pdf.length) });
      res.write(pdf.subarray(0, 50_000), () => res.destroy());
    });
    const { d } = await addDocument(site.url('/cut.pdf'));
    const before = await blobTotal();
    await expect(attempt(d, 1)).rejects.toMatchObject({ code: 'network_error', permanent: false });
    expect(await fileRow(d)).toMatchObject({ status: 'pending', sha256: null });
    expect(await blobTotal()).toBe(before);
    expect(await announceJob(d)).toBeUndefined();
    await attempt(d, 2);
    expect((await fileRow(d)).status).toBe('ready');
    expect(await announceJob(d)).toBeDefined();
  });

  it('marks the file failed at the last attempt, with the reason, and still announces it', async () => {
    site.route('/down.pdf', (_req, res) => res.writeHead(502).end());
    const { d } = await addDocument(site.url('/down.pdf'));
    await expect(attempt(d, FILE_MAX_ATTEMPTS - 1)).rejects.toMatchObject({ code: 'http_error' });
    expect((await fileRow(d)).status).toBe('pending');
    await attempt(d, FILE_MAX_ATTEMPTS); // resolves: graphile-worker is done with it
    expect(await fileRow(d)).toEqual({
      status: 'failed',
      error: `provider answered HTTP 502 (gave up after ${FILE_MAX_ATTEMPTS} attempts)`,
      sha256: null,
    });
    expect(await announceJob(d)).toBeDefined();
  });

  it('fails a permanent error at the first attempt', async () => {
    site.route('/forbidden.pdf', (_req, res) => res.writeHead(403).end());
    const { d } = await addDocument(site.url('/forbidden.pdf'));
    await attempt(d, 1);
    expect(await fileRow(d)).toMatchObject({ status: 'failed', error: 'provider answered HTTP 403' });
    expect(await announceJob(d)).toBeDefined();
  });

  it('is a no-op for a document erased since the job was queued', async () => {
    site.route('/erased.pdf', send(pdf, 'application/pdf'));
    const { d, c, u } = await addDocument(site.url('/erased.pdf'));
    expect((await ctx.sendWebhook('CONNECTION_DELETED', { id: c, id_user: u })).status).toBe(200);
    await attempt(d);
    expect(site.hits('/erased.pdf')).toBe(0);
    expect(await fileRow(d)).toBeUndefined();
    expect(await announceJob(d)).toBeUndefined();
  });

  it('hands a document without a URL straight to notifications', async () => {
    const { d } = await addDocument(null);
    // The sync queued its announcement and no file job…
    expect(await announceJob(d)).toEqual({ task_identifier: 'announce_document', revision: 0 });
    const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from graphile_worker.jobs where key = ${`file:${d}`}`);
    expect(n).toBe(0);
    // …and a file job queued by an older release for such a document does the same.
    await attempt(d);
    expect((await fileRow(d)).status).toBe('none');
    expect(await announceJob(d)).toMatchObject({ task_identifier: 'announce_document' });
  });

  it('does not settle as none a document that a concurrent sync is giving a url', async () => {
    const { d } = await addDocument(null);
    // The sync's own statements (diff.ts: the url gained, the file back to pending), left
    // uncommitted while the job runs: the job reads the document without a url.
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let pid = 0;
    const syncing = ctx.deps.db.transaction(async (tx) => {
      await tx.execute(sql`update documents set source_url = 'https://provider.example/late.pdf' where id = ${d}`);
      await tx.execute(sql`update document_files set status = 'pending' where document_id = ${d} and status = 'none'`);
      pid = (await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`))[0].pid;
      await gate;
    });
    await waitUntil(async () => pid !== 0, 10_000, 'the sync to run');
    const job = attempt(d);
    const blocked = async () =>
      (await ctx.database.db.execute<{ n: number }>(
        sql`select count(*)::int as n from pg_stat_activity where ${pid}::int = any(pg_blocking_pids(pid))`,
      ))[0].n > 0;
    await waitUntil(blocked, 10_000, 'the job to wait on the sync');
    release();
    await syncing;
    await job;
    // The sync's fetch job will settle it. The document was announced once, without a url,
    // by its first sync (revision 0); the job announced nothing more.
    expect((await fileRow(d)).status).toBe('pending');
    expect(await announceJob(d)).toEqual({ task_identifier: 'announce_document', revision: 0 });
  });
});
