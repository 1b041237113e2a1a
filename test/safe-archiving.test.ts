import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { sql } from 'drizzle-orm';
import { createTestContext, type TestContext } from './helpers/context.js';
import { syncedPayload } from './helpers/webhooks.js';
import { fileJobsOf } from './helpers/jobs.js';

// The safe archiving rule, one connection per test so that tests do not see each other's rows.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

let nextId = 1000;
const ids = () => ++nextId * 10;

async function sync(p: ReturnType<typeof syncedPayload>) {
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', p);
  expect(res.status).toBe(200);
  return res.json();
}
async function listSubs(userId: number, all = false) {
  const res = await ctx.request('GET', `/users/${userId}/subscriptions${all ? '?all' : ''}`);
  expect(res.status).toBe(200);
  return (await res.json()) as { subscriptions: { id: number; deleted: string | null }[]; total: number };
}

describe('safe archiving rule', () => {
  it('adds new subscriptions and documents, and says so in the summary', async () => {
    const u = ids(), c = ids(), s1 = ids(), s2 = ids();
    const out = await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1, documents: [{ id: ids() }, { id: ids() }] }, { id: s2 }] }));
    expect(out).toEqual({
      status: 'processed',
      summary: { subscriptions: { added: 2, deleted: 0, restored: 0, unchanged: 0 }, documents: { added: 2, updated: 0, unchanged: 0 } },
    });
    expect((await listSubs(u)).subscriptions.map((s) => s.id).sort()).toEqual([s1, s2].sort());
  });

  it('flags a subscription missing from a successful sync as deleted, hidden unless ?all, readable by id', async () => {
    const u = ids(), c = ids(), s1 = ids(), s2 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1 }, { id: s2 }] }));
    const out = await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: s1 }] }));
    expect(out.summary.subscriptions).toEqual({ added: 0, deleted: 1, restored: 0, unchanged: 1 });
    expect((await listSubs(u)).subscriptions.map((s) => s.id)).toEqual([s1]);
    const all = await listSubs(u, true);
    expect(all.total).toBe(2);
    expect(all.subscriptions.find((s) => s.id === s2)?.deleted).toBe('2026-11-21T08:00:00.000Z');
    const one = await ctx.request('GET', `/users/${u}/subscriptions/${s2}`);
    expect(one.status).toBe(200);
    expect((await one.json()).deleted).toBe('2026-11-21T08:00:00.000Z');
  });

  it('archives nothing on a failed sync', async () => {
    const u = ids(), c = ids(), s1 = ids(), s2 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1 }, { id: s2 }] }));
    const out = await sync(syncedPayload({ userId: u, connectionId: c, state: 'wrongpass', lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [] }));
    expect(out.summary.subscriptions.deleted).toBe(0);
    expect((await listSubs(u)).total).toBe(2);
  });

  it('archives nothing when a successful sync carries no subscriptions list at all', async () => {
    const u = ids(), c = ids(), s1 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1 }] }));
    const p = syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [] });
    delete (p.connection as { subscriptions?: unknown }).subscriptions;
    const out = await sync(p);
    expect(out.summary.subscriptions).toEqual({ added: 0, deleted: 0, restored: 0, unchanged: 0 });
    expect((await listSubs(u)).total).toBe(1);
  });

  it('restores a deleted subscription that comes back', async () => {
    const u = ids(), c = ids(), s1 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1 }] }));
    await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [] }));
    expect((await listSubs(u)).total).toBe(0);
    const out = await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-22T08:00:00Z', subscriptions: [{ id: s1 }] }));
    expect(out.summary.subscriptions).toEqual({ added: 0, deleted: 0, restored: 1, unchanged: 0 });
    expect((await listSubs(u)).subscriptions[0].deleted).toBeNull();
  });

  it('updates a changed document without announcing it again, and leaves unchanged ones', async () => {
    const u = ids(), c = ids(), s1 = ids(), d1 = ids(), d2 = ids();
    const url = (d: number) => `https://bills.example/${d}.pdf`;
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1, documents: [{ id: d1, url: url(d1) }, { id: d2, url: url(d2) }] }] }));
    const out = await sync(syncedPayload({
      userId: u, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z',
      subscriptions: [{ id: s1, documents: [{ id: d1, url: url(d1), total_amount: 99 }, { id: d2, url: url(d2) }] }],
    }));
    expect(out.summary.documents).toEqual({ added: 0, updated: 1, unchanged: 1 });
    const doc = await (await ctx.request('GET', `/users/${u}/documents/${d1}`)).json();
    expect(doc.total_amount).toBe(99);
    // One file job for the new documents of the first sync (a batch); the update queued none.
    expect((await fileJobsOf(ctx.database.db, d1)).length).toBe(1);
    expect((await fileJobsOf(ctx.database.db, d2)).length).toBe(1);
    const [{ n }] = await ctx.database.db.execute<{ n: number }>(sql`select count(*)::int as n from graphile_worker.jobs where task_identifier = 'fetch_document_files'`);
    expect(n).toBe(1);
  });

  it('stores every field of a document as sent, whatever its characters, and finds it unchanged when sent again', async () => {
    const u = ids(), c = ids(), s1 = ids(), d1 = ids(), d2 = ids(), d3 = ids();
    const odd = ['a "quoted" \\ back\\slash', '{braces},commas', 'NULL', '', ' spaced ', 'line\nbreak\ttab', 'émoji 🧾 \u2028'];
    const base = syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1, documents: [{ id: d1 }, { id: d2 }, { id: d3 }] }] });
    const [doc1, doc2, doc3] = base.connection.subscriptions[0].documents as Record<string, unknown>[];
    Object.assign(doc1, { name: odd[0], type: odd[1], number: odd[2], issuer: odd[3], currency: odd[4], url: odd[5], total_amount: 1e21, untaxed_amount: -0.5, vat: 5e-324, income: true, duedate: '0001-01-01', last_update: '2026-11-19T10:11:12.345Z' });
    Object.assign(doc2, { name: odd[6], type: null, date: null, number: null, issuer: null, total_amount: null, currency: null, income: false, has_file_on_website: null, url: null });
    Object.assign(doc3, { name: odd[5], date: '9999-12-31' });
    const first = await sync(base);
    expect(first.summary.documents).toEqual({ added: 3, updated: 0, unchanged: 0 });
    const rows = await ctx.database.db.execute<Record<string, unknown>>(sql`
      select id::float8 as id, name, type, date::text as date, duedate::text as duedate, number, issuer, total_amount, untaxed_amount, vat, currency,
        income, has_file_on_website, source_url, (extract(epoch from last_update) * 1000)::float8 as last_update, f.status as file
      from documents join document_files f on f.document_id = id where subscription_id = ${s1} order by id`);
    expect(rows).toEqual([
      { id: d1, name: odd[0], type: odd[1], date: '2026-11-01', duedate: '0001-01-01', number: odd[2], issuer: odd[3], total_amount: 1e21, untaxed_amount: -0.5, vat: 5e-324, currency: odd[4], income: true, has_file_on_website: false, source_url: odd[5], last_update: Date.parse('2026-11-19T10:11:12.345Z'), file: 'pending' },
      { id: d2, name: odd[6], type: null, date: null, duedate: null, number: null, issuer: null, total_amount: null, untaxed_amount: null, vat: null, currency: null, income: false, has_file_on_website: null, source_url: null, last_update: Date.parse('2026-11-20T08:00:00Z'), file: 'none' },
      { id: d3, name: odd[5], type: 'bill', date: '9999-12-31', duedate: null, number: String(d3), issuer: 'Acme', total_amount: 42.5, untaxed_amount: null, vat: null, currency: 'EUR', income: null, has_file_on_website: false, source_url: null, last_update: Date.parse('2026-11-20T08:00:00Z'), file: 'none' },
    ]);
    const again = await sync({ ...base, connection: { ...base.connection, last_update: '2026-11-21T08:00:00Z' } });
    expect(again.summary.documents).toEqual({ added: 0, updated: 0, unchanged: 3 });
  });

  it('lists documents of deleted subscriptions only with ?all, and always per subscription', async () => {
    const u = ids(), c = ids(), s1 = ids(), s2 = ids(), d1 = ids(), d2 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1, documents: [{ id: d1 }] }, { id: s2, documents: [{ id: d2 }] }] }));
    await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: s1 }] }));
    const visible = await (await ctx.request('GET', `/users/${u}/documents`)).json();
    expect(visible.documents.map((d: { id: number }) => d.id)).toEqual([d1]);
    const all = await (await ctx.request('GET', `/users/${u}/documents?all=1`)).json();
    expect(all.total).toBe(2);
    const perSub = await (await ctx.request('GET', `/users/${u}/subscriptions/${s2}/documents`)).json();
    expect(perSub.documents.map((d: { id: number }) => d.id)).toEqual([d2]);
  });

  it('ignores a stale sync', async () => {
    const u = ids(), c = ids(), s1 = ids(), s2 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: s1 }] }));
    const out = await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-20T08:00:00Z', subscriptions: [{ id: s2 }] }));
    expect(out).toEqual({ status: 'stale' });
    expect((await listSubs(u, true)).subscriptions.map((s) => s.id)).toEqual([s1]);
  });

  it('cascades a connection deletion to subscriptions and documents', async () => {
    const u = ids(), c = ids(), s1 = ids(), d1 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1, documents: [{ id: d1 }] }] }));
    const res = await ctx.sendWebhook('CONNECTION_DELETED', { id: c, id_user: u });
    expect(await res.json()).toEqual({ status: 'processed' });
    expect((await listSubs(u, true)).total).toBe(0);
    expect((await ctx.request('GET', `/users/${u}/documents/${d1}`)).status).toBe(404);
    const rows = await ctx.database.db.execute<{ n: number }>(sql`select count(*)::int as n from documents where id = ${d1}`);
    expect(rows[0].n).toBe(0);
  });

  it('never brings back an erased connection or user from a late sync', async () => {
    const u = ids(), c = ids(), s1 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: s1 }] }));
    await ctx.sendWebhook('CONNECTION_DELETED', { id: c, id_user: u });
    // The aggregator retries a sync that failed earlier: it arrives after the deletion.
    expect(await sync(syncedPayload({ idWebhookData: ids(), userId: u, connectionId: c, subscriptions: [{ id: s1 }] }))).toEqual({ status: 'stale' });
    expect((await ctx.request('GET', `/users/${u}/connections/${c}`)).status).toBe(404);

    const c2 = ids();
    await sync(syncedPayload({ userId: u, connectionId: c2, subscriptions: [{ id: ids() }] }));
    await ctx.sendWebhook('USER_DELETED', { id: u });
    expect(await sync(syncedPayload({ userId: u, connectionId: ids(), subscriptions: [{ id: ids() }] }))).toEqual({ status: 'stale' });
    expect((await ctx.request('GET', `/users/${u}/subscriptions`)).status).toBe(404);
  });
});
