import { sql } from 'drizzle-orm';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FILE_MAX_ATTEMPTS, fetchDocumentFiles } from '../src/files/tasks.js';
import { renderThumbnails } from '../src/files/thumbnail-job.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { fileJobsOf } from './helpers/jobs.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { waitUntil } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

// File jobs come in batches: one fetch_document_files job per 100 new documents of a sync,
// large syncs after small ones, and the file's row — not the job — says what is left to do.

let ctx: TestContext;
let site: ProviderSite;
let handler: ReturnType<typeof fetchDocumentFiles>;

beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', FILE_CONCURRENCY: '1' });
  site = await startProviderSite();
  site.route('/ok.txt', send('a bill', 'text/plain'));
  site.route('/forbidden.pdf', (_req, res) => res.writeHead(403).end());
  site.route('/down.pdf', (_req, res) => res.writeHead(502).end());
  const pdf = await makePdf(['A bill']);
  site.route('/flaky.pdf', (req, res, hit) => (hit === 1 ? res.writeHead(500).end() : send(pdf, 'application/pdf')(req, res, hit)));
  handler = fetchDocumentFiles(ctx.deps);
});
afterAll(async () => {
  await ctx.close();
  await site.close();
});

let nextId = 40_000;
const id = () => ++nextId;
async function sync(documents: { id: number; url?: string | null }[], userId = id()) {
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId, connectionId: id(), subscriptions: [{ id: id(), documents }] }));
  expect(res.status).toBe(200);
  return userId;
}
const fileRow = async (d: number) =>
  (await ctx.database.db.execute<{ status: string; error: string | null; attempts: number; claimed_at: string | null }>(
    sql`select status, error, attempts, claimed_at::text from document_files where document_id = ${d}`,
  ))[0];
/** The documents among `ids` whose announcement is queued in an announce_documents batch job. */
async function batchAnnounced(ids: number[]) {
  const rows = await ctx.database.db.execute<{ id: number }>(sql`
    select distinct x::int as id from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id cross join lateral json_array_elements_text(j.payload) x
    where t.identifier = 'announce_documents' and x::bigint = any(${`{${ids.join(',')}}`}::bigint[])`);
  return rows.map((r) => r.id).sort((a, b) => a - b);
}
/** One run of a batch job, as graphile-worker makes it: the outcome of each entry. */
async function run(documentIds: number[], attempts = 1) {
  const entries = await handler(documentIds, { job: { attempts, max_attempts: 25, priority: 0 } } as unknown as JobHelpers);
  return (await Promise.allSettled(entries ?? [])).map((r) => r.status);
}

describe('fetch_document_files', () => {
  it('is queued once per 100 new documents with a url, large syncs at a lower priority than small ones', async () => {
    const small = [id(), id(), id()];
    await sync(small.map((d) => ({ id: d, url: site.url('/ok.txt') })));
    const large = Array.from({ length: 250 }, () => id());
    const noUrl = id();
    await sync([...large.map((d) => ({ id: d, url: site.url('/ok.txt') })), { id: noUrl }]);

    const [smallJob] = await fileJobsOf(ctx.database.db, small[0]);
    expect(smallJob).toMatchObject({ priority: 0, queue_name: null });
    for (const d of small) expect((await fileJobsOf(ctx.database.db, d))[0].id).toBe(smallJob.id);
    const largeJobs = new Map<string, number>();
    const lanes = new Set<string | null>();
    for (const d of large) {
      const jobs = await fileJobsOf(ctx.database.db, d);
      expect(jobs).toHaveLength(1);
      expect(jobs[0].priority).toBe(1);
      largeJobs.set(jobs[0].id, (largeJobs.get(jobs[0].id) ?? 0) + 1);
      lanes.add(jobs[0].queue_name);
    }
    expect([...largeJobs.values()]).toEqual([100, 100, 50]);
    // Backfill batches run in two lanes, one at a time in each: they never hold every slot.
    expect([...lanes].sort()).toEqual(['files:backfill:0', 'files:backfill:1']);
    // Nothing to fetch: straight to its announcement, at the sync's priority.
    expect(await fileJobsOf(ctx.database.db, noUrl)).toEqual([]);
    const [announce] = await ctx.database.db.execute<{ priority: number }>(sql`select priority from graphile_worker.jobs where key = ${`announce:${noUrl}`}`);
    expect(announce.priority).toBe(1);
    await ctx.database.db.execute(sql`delete from graphile_worker._private_jobs`); // not run here
  });

  it('retries only the documents that failed, and a re-run fetches nothing twice', async () => {
    const [ok, flaky, forbidden, erased] = [id(), id(), id(), id()];
    await sync([{ id: ok, url: site.url('/ok.txt') }, { id: flaky, url: site.url('/flaky.pdf') }, { id: forbidden, url: site.url('/forbidden.pdf') }]);
    const erasedUser = await sync([{ id: erased, url: site.url('/ok.txt') }]);
    const hitsBefore = site.hits('/ok.txt');
    const [{ id_connection }] = await ctx.database.db.execute<{ id_connection: number }>(
      sql`select s.connection_id::int as id_connection from documents d join subscriptions s on s.id = d.subscription_id where d.id = ${erased}`,
    );
    expect((await ctx.sendWebhook('CONNECTION_DELETED', { id: id_connection, id_user: erasedUser })).status).toBe(200);

    expect(await run([ok, flaky, forbidden, erased])).toEqual(['fulfilled', 'rejected', 'fulfilled', 'fulfilled']);
    expect(await fileRow(ok)).toMatchObject({ status: 'ready', attempts: 1 });
    expect(await fileRow(flaky)).toMatchObject({ status: 'pending', attempts: 1, claimed_at: null }); // released, to be retried
    expect(await fileRow(forbidden)).toMatchObject({ status: 'failed', error: 'provider answered HTTP 403', attempts: 1 });
    expect(site.hits('/ok.txt')).toBe(hitsBefore + 1); // not the erased document's

    // The same batch again (a job run twice, or graphile-worker's retry of the failed entry).
    expect(await run([ok, flaky, forbidden, erased], 2)).toEqual(['fulfilled', 'fulfilled', 'fulfilled', 'fulfilled']);
    expect(await fileRow(flaky)).toMatchObject({ status: 'ready', attempts: 2 });
    expect(site.hits('/ok.txt')).toBe(hitsBefore + 1);
    expect(site.hits('/forbidden.pdf')).toBe(1);
    expect(site.hits('/flaky.pdf')).toBe(2);
    expect(await batchAnnounced([ok, flaky, forbidden, erased])).toEqual([ok, flaky, forbidden].sort((a, b) => a - b));
    await ctx.database.db.execute(sql`delete from graphile_worker._private_jobs`);
  });

  it('counts tries per document: the last one fails the file, whichever jobs made them', async () => {
    const d = id();
    await sync([{ id: d, url: site.url('/down.pdf') }]);
    for (let i = 1; i < FILE_MAX_ATTEMPTS; i++) expect(await run([d])).toEqual(['rejected']); // each a first attempt of its job
    expect(await fileRow(d)).toMatchObject({ status: 'pending', attempts: FILE_MAX_ATTEMPTS - 1 });
    expect(await run([d])).toEqual(['fulfilled']);
    expect(await fileRow(d)).toMatchObject({
      status: 'failed',
      error: `provider answered HTTP 502 (gave up after ${FILE_MAX_ATTEMPTS} attempts)`,
      attempts: FILE_MAX_ATTEMPTS,
    });
    await ctx.database.db.execute(sql`delete from graphile_worker._private_jobs`);
  });

  it('settles and announces files without waiting for their thumbnails, drawn after by one job per batch', async () => {
    const [a, b, t] = [id(), id(), id()];
    site.route('/a.pdf', send(await makePdf(['Bill A']), 'application/pdf'));
    site.route('/b.pdf', send(await makePdf(['Bill B']), 'application/pdf'));
    await sync([{ id: a, url: site.url('/a.pdf') }, { id: b, url: site.url('/b.pdf') }, { id: t, url: site.url('/ok.txt') }]);
    const entries = await handler([a, b, t], { job: { id: '777', attempts: 1, max_attempts: 25, priority: 0 } } as unknown as JobHelpers);
    expect((await Promise.allSettled(entries ?? [])).map((e) => e.status)).toEqual(['fulfilled', 'fulfilled', 'fulfilled']);
    const thumbs = () =>
      ctx.database.db.execute<{ id: number; status: string; thumb: string | null }>(sql`
        select document_id::int as id, status, thumbnail_sha256 as thumb from document_files where document_id in (${a}, ${b}, ${t}) order by document_id`);
    expect(await thumbs()).toEqual([a, b, t].map((d) => ({ id: d, status: 'ready', thumb: null })));
    // The three join one announcement, announced in one transaction (notify/announce.ts).
    const [announce] = await ctx.database.db.execute<{ payload: number[] }>(
      sql`select payload from graphile_worker._private_jobs where key = 'announce:batch:777'`,
    );
    expect([...announce.payload].sort()).toEqual([a, b, t].sort());
    const [job] = await ctx.database.db.execute<{ payload: number[] }>(
      sql`select payload from graphile_worker._private_jobs where key = 'thumbnails:777'`,
    );
    expect([...job.payload].sort()).toEqual([a, b, t].sort());

    const draw = renderThumbnails(ctx.deps);
    await draw(job.payload, {} as JobHelpers);
    const drawn = await thumbs();
    expect(drawn.map((r) => r.thumb !== null)).toEqual([true, true, false]); // a text file has none
    await draw(job.payload, {} as JobHelpers); // a re-run draws nothing twice
    expect(await thumbs()).toEqual(drawn);
    await ctx.database.db.execute(sql`delete from graphile_worker._private_jobs`);
  });

  it('fetches the files of a small sync before those of a large sync queued earlier', async () => {
    const large = Array.from({ length: 150 }, () => id());
    await sync(large.map((d) => ({ id: d, url: site.url('/ok.txt') })));
    const fresh = [id(), id()];
    await sync(fresh.map((d) => ({ id: d, url: site.url('/ok.txt') })));
    await ctx.startWorker(); // one slot for files (FILE_CONCURRENCY=1): jobs run one after the other

    const settledAt = async (ids: number[]) =>
      ctx.database.db.execute<{ at: string }>(
        sql`select updated_at::text as at from document_files where document_id = any(${`{${ids.join(',')}}`}::bigint[]) and status = 'ready' order by updated_at`,
      );
    await waitUntil(async () => (await settledAt(large)).length === large.length, 60_000, 'every file ready');
    const freshAt = await settledAt(fresh);
    const largeAt = await settledAt(large);
    expect(freshAt).toHaveLength(2);
    expect(freshAt.at(-1)!.at < largeAt[0].at).toBe(true);
  });
});
