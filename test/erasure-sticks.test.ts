import { sql } from 'drizzle-orm';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { eraseConnection, eraseUser } from '../src/archive/erase.js';
import type { Tx } from '../src/db/client.js';
import { announceDocument } from '../src/notify/announce.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { waitUntil } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * Issue 8, "erasure sticks": what an erasure removed stays removed, whatever arrives while
 * it runs or after it. Concurrency is real: the erasure runs in its own open transaction and
 * the test waits on pg_blocking_pids, never on time.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const n = async (query: string) =>
  (await ctx.database.db.execute<{ n: number }>(sql.raw(`select count(*)::int as n from ${query}`)))[0].n;
let webhookId = 90_000;
const sync = async (p: ReturnType<typeof syncedPayload>) => {
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', { ...p, id_webhook_data: ++webhookId });
  expect(res.status).toBe(200);
  return res.json();
};

/** Run `erase` in a transaction left open until `commit()`; `pid` is its backend. */
async function openErasure(erase: (tx: Tx) => Promise<unknown>) {
  let release!: () => void;
  const gate = new Promise<void>((resolve) => (release = resolve));
  let pid = 0;
  const done = ctx.deps.db.transaction(async (tx) => {
    const [row] = await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`);
    await erase(tx);
    pid = row.pid;
    await gate;
  });
  await waitUntil(async () => pid !== 0, 10_000, 'the erasure to run');
  return {
    pid,
    /** Whether some backend waits on the erasure's locks. */
    blocksSomeone: async () => (await n(`pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`)) > 0,
    commit: async () => {
      release();
      await done;
    },
  };
}

describe('a sync that waits on an erasure in progress', () => {
  it.each([
    ['USER_DELETED', (tx: Tx, u: number) => eraseUser(tx, u)],
    ['CONNECTION_DELETED', (tx: Tx, u: number) => eraseConnection(tx, u * 10 + 1)],
  ])('does not bring back what %s erased once it commits', async (_event, erase) => {
    const u = _event === 'USER_DELETED' ? 11 : 12;
    const c = u * 10 + 1;
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: c * 10, documents: [{ id: c * 100 }] }] }));

    const jobs = () => n(`graphile_worker.jobs where task_identifier in ('fetch_document_files', 'announce_document')`);
    const jobsBefore = await jobs();
    const erasure = await openErasure((tx) => erase(tx, u));
    const late = ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ idWebhookData: ++webhookId, userId: u, connectionId: c, lastUpdate: '2026-11-22T08:00:00Z', subscriptions: [{ id: c * 10, documents: [{ id: c * 100 }] }] }));
    await waitUntil(erasure.blocksSomeone, 10_000, 'the sync to wait on the erasure');
    await erasure.commit();

    expect(await (await late).json()).toEqual({ status: 'stale' });
    expect(await n(`connections where id = ${c}`)).toBe(0);
    expect(await n(`subscriptions where id = ${c * 10}`)).toBe(0);
    expect(await n(`documents where id = ${c * 100}`)).toBe(0);
    expect(await n(`users where id = ${u}`)).toBe(_event === 'USER_DELETED' ? 0 : 1);
    expect(await jobs()).toBe(jobsBefore);
  });
});

describe('the announcement of a document erased meanwhile', () => {
  it.each([['without', false], ['with', true]])('sends nothing (%s email delivery set up)', async (_name, withMail) => {
    const u = withMail ? 21 : 22;
    const c = u * 10 + 1, doc = c * 100;
    await sync(syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: c * 10, documents: [{ id: doc }] }] }));
    if (withMail) expect((await ctx.request('PUT', `/users/${u}/email-delivery`, { body: { to: `u${u}@example.com` } })).status).toBe(200);

    // The file job settled the document and queued its announcement; the connection is being erased.
    const erasure = await openErasure((tx) => eraseConnection(tx, c));
    let announced = false;
    const announce = announceDocument(ctx.deps)({ documentId: doc }, {} as JobHelpers).finally(() => (announced = true));
    await waitUntil(async () => announced || (await erasure.blocksSomeone()), 10_000, 'the announcement to finish or wait');
    await erasure.commit();
    await announce;

    expect(await n(`events where dedupe_key = 'document.created:${doc}'`)).toBe(0);
    expect(await n(`events where user_id = ${u}`)).toBe(0);
    expect(await n(`email_deliveries where user_id = ${u}`)).toBe(0);
    expect(await n(`graphile_worker.jobs where task_identifier = 'send_document_email' and key = 'email:${doc}'`)).toBe(0);
  });
});

describe('delivery keys name the event', () => {
  it('USER_DELETED and CONNECTION_DELETED of one body {"id": 74} are two deliveries', async () => {
    await sync(syncedPayload({ userId: 73, connectionId: 74, subscriptions: [{ id: 741, documents: [{ id: 7411 }] }] }));
    const body = '{"id": 74}';
    expect(await (await ctx.sendWebhook('USER_DELETED', body)).json()).toEqual({ status: 'processed' });
    expect(await (await ctx.sendWebhook('CONNECTION_DELETED', body)).json()).toEqual({ status: 'processed' });
    expect(await n('connections where id = 74')).toBe(0);
    expect(await n('documents where id = 7411')).toBe(0);
    expect(await n('users where id = 73')).toBe(1);
    // Each is still applied once.
    expect(await (await ctx.sendWebhook('CONNECTION_DELETED', body)).json()).toEqual({ status: 'duplicate' });
  });

  it('a delivery recorded under the key of earlier releases is still a duplicate', async () => {
    await ctx.deps.db.execute(sql`insert into inbound_deliveries (key, event, outcome) values ('id:75001', 'CONNECTION_SYNCED', 'processed')`);
    const res = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ idWebhookData: 75001, userId: 75, connectionId: 751, subscriptions: [{ id: 7511 }] }));
    expect(await res.json()).toEqual({ status: 'duplicate' });
    expect(await n('connections where id = 751')).toBe(0);
  });
});

describe('a sync without last_update', () => {
  it('keeps the stored one, so an older sync arriving later is still stale and archives nothing', async () => {
    const u = 31, c = 311;
    await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: 3111 }, { id: 3112 }] }));
    const p = syncedPayload({ userId: u, connectionId: c, subscriptions: [{ id: 3111 }, { id: 3112 }] });
    (p.connection as { last_update: string | null }).last_update = null;
    expect((await sync(p)).status).toBe('processed');
    expect((await (await ctx.request('GET', `/users/${u}/connections/${c}`)).json()).last_update).toBe('2026-11-21T08:00:00.000Z');

    expect(await sync(syncedPayload({ userId: u, connectionId: c, lastUpdate: '2026-11-20T08:00:00Z', subscriptions: [{ id: 3111 }] }))).toEqual({ status: 'stale' });
    expect((await (await ctx.request('GET', `/users/${u}/subscriptions`)).json()).total).toBe(2);
  });
});
