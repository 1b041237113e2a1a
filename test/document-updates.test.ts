import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { waitUntil } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * Issue 14: a known document is updated by what a later sync says
 * of it — a url it gains gets its file fetched then, a new last_update is kept. The real
 * worker runs the file jobs against a loopback provider site.
 */
let ctx: TestContext;
let site: ProviderSite;
beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  site = await startProviderSite();
  site.route('/late.pdf', send(await makePdf(['A bill whose link came later']), 'application/pdf'));
  await ctx.startWorker();
});
afterAll(async () => {
  await ctx.close();
  await site.close();
});

let webhookId = 0;
async function sync(p: ReturnType<typeof syncedPayload>) {
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', { ...p, id_webhook_data: ++webhookId });
  expect(res.status).toBe(200);
  return res.json();
}
const getDocument = async (u: number, d: number) => (await ctx.request('GET', `/users/${u}/documents/${d}`)).json();

describe('a document that gains a url in a later sync', () => {
  it('gets its file fetched then, and is announced once', async () => {
    const u = 140, c = 1401, s = 14011, d = 140111;
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s, documents: [{ id: d, url: null }] }] }));
    // Settled without a file, and announced as such.
    await waitUntil(async () => (await ctx.deps.db.execute(sql`select 1 from events where dedupe_key = ${`document.created:${d}`}`)).length > 0, 20_000, 'the first announcement');
    expect((await getDocument(u, d)).file.status).toBe('none');

    const out = await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: s, documents: [{ id: d, url: site.url('/late.pdf') }] }] }));
    expect(out.summary.documents).toEqual({ added: 0, updated: 1, unchanged: 0 });
    const doc = await waitUntil(async () => {
      const doc = await getDocument(u, d);
      return doc.file.status === 'ready' && doc;
    }, 20_000, 'the file to be fetched');
    expect(doc.file.content_type).toBe('application/pdf');
    expect(doc.url).toMatch(/^http/);

    // Its announcement was made already: the file job's hand-over records nothing new.
    await waitUntil(async () => (await ctx.deps.db.execute(sql`select 1 from graphile_worker.jobs where key = ${`announce:${d}`}`)).length === 0, 20_000, 'the announce job to run');
    const events = await ctx.deps.db.execute(sql`select 1 from events where type = 'document.created' and data->'document'->>'id' = ${String(d)}`);
    expect(events).toHaveLength(1);
  });
});

describe("a document whose only change is its last_update", () => {
  it('is updated, and counted as updated', async () => {
    const u = 141, c = 1411, s = 14111, d = 141111;
    const payload = (lastUpdate: string) => {
      const p = syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-20T08:00:00Z', subscriptions: [{ id: s, documents: [{ id: d }] }] });
      (p.connection.subscriptions[0].documents[0] as Record<string, unknown>).last_update = lastUpdate;
      return p;
    };
    await sync(payload('2026-11-20T07:00:00Z'));
    expect((await getDocument(u, d)).last_update).toBe('2026-11-20T07:00:00.000Z');

    expect((await sync(payload('2026-11-21T07:00:00Z'))).summary.documents).toEqual({ added: 0, updated: 1, unchanged: 0 });
    expect((await getDocument(u, d)).last_update).toBe('2026-11-21T07:00:00.000Z');
    expect((await sync(payload('2026-11-21T07:00:00Z'))).summary.documents).toEqual({ added: 0, updated: 0, unchanged: 1 });
  });

  it("one that carries none keeps its last_update while nothing changes, and takes the sync's when something does", async () => {
    const u = 142, c = 1421, s = 14211, d = 142111;
    const at = (lastUpdate: string, total_amount = 10) => syncedPayload({ userId: u, connectionId: c, lastUpdate, subscriptions: [{ id: s, documents: [{ id: d, total_amount }] }] });
    await sync(at('2026-11-20T08:00:00Z'));
    expect((await sync(at('2026-11-21T08:00:00Z'))).summary.documents).toEqual({ added: 0, updated: 0, unchanged: 1 });
    expect((await getDocument(u, d)).last_update).toBe('2026-11-20T08:00:00.000Z');
    expect((await sync(at('2026-11-22T08:00:00Z', 11))).summary.documents).toEqual({ added: 0, updated: 1, unchanged: 0 });
    expect((await getDocument(u, d)).last_update).toBe('2026-11-22T08:00:00.000Z');
  });
});
