import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { announce as announceNow, announceDocument } from '../src/notify/announce.js';
import { syncBills as syncBillsOf, type Bill } from './helpers/bills.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint } from './helpers/notify.js';
import { waitUntil } from './helpers/receiver.js';
import { startFakeSvix, type FakeSvix } from './helpers/svix-server.js';

// "A bill is announced once" around the announce path: a second connection to the same provider, the admin's
// "announce anyway", the notify.dedupe switch, what erasure keeps of the ledger, and two
// copies of one bill announced at the same moment. The announce task is called as the
// worker calls it, once the file is settled (these documents have no file).
let ctx: TestContext;
let announce: ReturnType<typeof announceDocument>;
beforeAll(async () => {
  ctx = await createTestContext();
  announce = announceDocument(ctx.deps);
});
afterAll(() => ctx.close());

let nextId = 5000;
const syncBills = (userId: number, bills: Bill[]) => syncBillsOf(ctx, userId, bills, () => nextId++);

const eventCount = async (type: string, documentId: number) =>
  (await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from events where dedupe_key = ${`${type}:${documentId}`}`))[0].n;
const getDocument = async (userId: number, id: number) => (await ctx.request('GET', `/users/${userId}/documents/${id}`)).json();

describe('a second connection to the same provider', () => {
  it('stores the repeat, points it at the earlier document, and does not announce it; another amount or number is another bill', async () => {
    const first = await syncBills(20, [{ number: 'FA-1', amount: 42.5 }]);
    await announce({ documentId: first.ids[0] }, {} as never);
    const second = await syncBills(20, [{ number: 'FA-1', amount: 42.5 }, { number: 'FA-1', amount: 42.51 }, { number: 'FA-2', amount: 42.5 }]);
    for (const documentId of second.ids) await announce({ documentId }, {} as never);

    expect(await eventCount('document.created', first.ids[0])).toBe(1);
    expect(await getDocument(20, second.ids[0])).toMatchObject({ duplicate_of: first.ids[0], duplicate_reason: 'fields' });
    expect(await eventCount('document.created', second.ids[0])).toBe(0);
    expect(await eventCount('document.duplicate', second.ids[0])).toBe(1);
    for (const other of second.ids.slice(1)) {
      expect(await getDocument(20, other)).toMatchObject({ duplicate_of: null, duplicate_reason: null });
      expect(await eventCount('document.created', other)).toBe(1);
    }
    // Announcing again (a re-run job) changes nothing: the original is no repeat of itself.
    await announce({ documentId: first.ids[0] }, {} as never);
    await announce({ documentId: second.ids[0] }, {} as never);
    expect(await getDocument(20, first.ids[0])).toMatchObject({ duplicate_of: null });
    expect(await eventCount('document.duplicate', second.ids[0])).toBe(1);

    const listed = await (await ctx.request('GET', '/users/20/documents?duplicates')).json();
    expect(listed.documents.map((d: { id: number }) => d.id)).toEqual([second.ids[0]]);
    expect(listed.total).toBe(1);
  });
});

describe('POST /users/{u}/documents/{id}/announce', () => {
  it('announces a duplicate anyway, webhook and mail, once; refuses a document that is no duplicate; admin only', async () => {
    const token = (await (await ctx.request('POST', '/users/21/token')).json()).token;
    expect((await ctx.request('PUT', '/users/21/email-delivery', { body: { to: 'ann@example.com' } })).status).toBe(200);
    const first = await syncBills(21, [{ number: 'FA-9', amount: 10 }]);
    await announce({ documentId: first.ids[0] }, {} as never);
    const again = await syncBills(21, [{ number: 'FA-9', amount: 10 }]);
    await announce({ documentId: again.ids[0] }, {} as never);
    const dup = again.ids[0];
    const mails = async () => (await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from email_deliveries where document_id = ${dup}`))[0].n;
    expect(await mails()).toBe(0);

    expect((await ctx.request('POST', `/users/me/documents/${dup}/announce`, { token })).status).toBe(404);
    expect((await ctx.request('POST', `/users/21/documents/${dup}/announce`, { token })).status).toBe(404);
    expect((await ctx.request('POST', `/users/20/documents/${dup}/announce`)).status).toBe(404);
    expect((await ctx.request('POST', `/users/21/documents/x1/announce`)).status).toBe(400);
    const notDup = await ctx.request('POST', `/users/21/documents/${first.ids[0]}/announce`);
    expect(notDup.status).toBe(409);
    expect((await notDup.json()).error.code).toBe('conflict');

    const res = await ctx.request('POST', `/users/21/documents/${dup}/announce`);
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ document: { id: dup, duplicate_of: first.ids[0], duplicate_reason: 'fields' }, announced: { webhook: true, email: true } });
    expect(await eventCount('document.created', dup)).toBe(1);
    expect(await mails()).toBe(1);
    // Once only, and a re-run of its job does not take it back.
    expect(await (await ctx.request('POST', `/users/21/documents/${dup}/announce`)).json()).toMatchObject({ announced: { webhook: false, email: false } });
    await announce({ documentId: dup }, {} as never);
    expect(await eventCount('document.created', dup)).toBe(1);
    expect(await mails()).toBe(1);
  });
});

describe('notify.dedupe', () => {
  it('is "1" by default, takes "0" or "1" only, and "0" announces every new document', async () => {
    expect((await (await ctx.request('GET', '/config')).json())['notify.dedupe']).toBe('1');
    const bad = await ctx.request('POST', '/config', { body: { 'notify.dedupe': 'yes' } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error).toMatchObject({ code: 'invalid_config', details: [{ key: 'notify.dedupe' }] });
    expect((await (await ctx.request('POST', '/config', { body: { 'notify.dedupe': '0' } })).json())['notify.dedupe']).toBe('0');
    try {
      const a = await syncBills(22, [{ number: 'FA-3', amount: 5 }]);
      const b = await syncBills(22, [{ number: 'FA-3', amount: 5 }]);
      for (const documentId of [...a.ids, ...b.ids]) await announce({ documentId }, {} as never);
      expect(await eventCount('document.created', a.ids[0])).toBe(1);
      expect(await eventCount('document.created', b.ids[0])).toBe(1);
      expect(await getDocument(22, b.ids[0])).toMatchObject({ duplicate_of: null });
    } finally {
      await ctx.request('POST', '/config', { body: { 'notify.dedupe': '1' } });
    }
  });
});

describe('the ledger and erasure', () => {
  const ledger = (userId: number) =>
    ctx.deps.db.execute<{ reason: string; document_id: number | null; fingerprint: string }>(sql`
      select reason, document_id::float8 as document_id, fingerprint from announcements where user_id = ${userId}`);

  it('holds keyed hashes only, outlives the connection (duplicate_of "erased"), and goes with the user', async () => {
    const first = await syncBills(23, [{ number: 'FA-7', amount: 77.7 }]);
    await announce({ documentId: first.ids[0] }, {} as never);
    const rows = await ledger(23);
    expect(rows).toEqual([{ reason: 'fields', document_id: first.ids[0], fingerprint: expect.stringMatching(/^[0-9a-f]{64}$/) }]);
    expect(JSON.stringify(rows)).not.toMatch(/FA-7|77\.7|acme/i);

    expect((await ctx.sendWebhook('CONNECTION_DELETED', { id: first.connectionId, id_user: 23 })).status).toBe(200);
    expect(await ledger(23)).toEqual([{ reason: 'fields', document_id: null, fingerprint: rows[0].fingerprint }]);
    const again = await syncBills(23, [{ number: 'FA-7', amount: 77.7 }]);
    await announce({ documentId: again.ids[0] }, {} as never);
    expect(await getDocument(23, again.ids[0])).toMatchObject({ duplicate_of: 'erased', duplicate_reason: 'fields' });
    expect(await eventCount('document.created', again.ids[0])).toBe(0);

    expect((await ctx.sendWebhook('USER_DELETED', { id: 23 })).status).toBe(200);
    expect(await ledger(23)).toEqual([]);
  });

  it('a repeat whose original is erased later says "erased"', async () => {
    const first = await syncBills(24, [{ number: 'FA-8', amount: 8 }]);
    await announce({ documentId: first.ids[0] }, {} as never);
    const again = await syncBills(24, [{ number: 'FA-8', amount: 8 }]);
    await announce({ documentId: again.ids[0] }, {} as never);
    expect(await getDocument(24, again.ids[0])).toMatchObject({ duplicate_of: first.ids[0] });
    expect((await ctx.request('DELETE', `/users/24/connections/${first.connectionId}`)).status).toBe(204);
    expect(await getDocument(24, again.ids[0])).toMatchObject({ duplicate_of: 'erased', duplicate_reason: 'fields' });
  });
});

describe('two copies of one bill at the same moment', () => {
  /**
   * Copy 1 is announced in a transaction held open; copy 2's announce job starts meanwhile
   * and must wait for it (on the ledger's key), then `end` commits or rolls copy 1 back.
   */
  async function race(userId: number, end: 'commit' | 'rollback') {
    const { ids } = await syncBills(userId, [{ number: 'FA-5', amount: 5 }, { number: 'FA-5', amount: 5 }]);
    let finish!: () => void;
    const held = new Promise<void>((resolve) => (finish = resolve));
    let started!: () => void;
    const first = new Promise<void>((resolve) => (started = resolve));
    const holder = ctx.deps.db
      .transaction(async (tx) => {
        await announceInTx(tx, ids[0]);
        started();
        await held;
        if (end === 'rollback') throw new Error('rolled back');
      })
      .catch((err: Error) => {
        if (err.message !== 'rolled back') throw err;
      });
    await first;
    const second = announce({ documentId: ids[1] }, {} as never);
    await waitUntil(async () => {
      const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`
        select count(*)::int as n from pg_stat_activity where cardinality(pg_blocking_pids(pid)) > 0 and datname = current_database()`);
      return n > 0;
    }, 10_000, 'the second copy waiting for the first');
    finish();
    await Promise.all([holder, second]);
    return ids;
  }
  const announceInTx = (tx: Parameters<Parameters<typeof ctx.deps.db.transaction>[0]>[0], id: number) => announceNow(tx, ctx.deps, id, { force: false });

  it('the second waits for the first, and finds it: one announcement', async () => {
    const ids = await race(25, 'commit');
    expect(await eventCount('document.created', ids[0])).toBe(1);
    expect(await eventCount('document.created', ids[1])).toBe(0);
    expect(await getDocument(25, ids[1])).toMatchObject({ duplicate_of: ids[0], duplicate_reason: 'fields' });
  });

  it('when the first rolls back, the second announces: nothing lost', async () => {
    const ids = await race(26, 'rollback');
    expect(await eventCount('document.created', ids[0])).toBe(0);
    expect(await eventCount('document.created', ids[1])).toBe(1);
    expect(await getDocument(26, ids[1])).toMatchObject({ duplicate_of: null });
  });
});

describe('document.duplicate is opt-in in Svix API mode too', () => {
  let svix: FakeSvix;
  let mode: TestContext;
  beforeAll(async () => {
    svix = await startFakeSvix();
    mode = await createTestContext({ SVIX_API_KEY: svix.token, SVIX_SERVER_URL: svix.url });
  });
  afterAll(async () => {
    await mode.close();
    await svix.close();
  });

  it('mirrors an endpoint with empty events as every type but document.duplicate; one that lists it, with it', async () => {
    const every = await createEndpoint(mode, { url: 'https://example.com/all' });
    const asked = await createEndpoint(mode, { url: 'https://example.com/dups', events: ['document.duplicate'] });
    const mirrored = (id: string) => [...svix.endpoints.values()].find((e) => e.uid === id)!.filterTypes as string[];
    expect(every.events).toEqual([]);
    expect(mirrored(every.id)).toContain('document.created');
    expect(mirrored(every.id)).not.toContain('document.duplicate');
    expect(mirrored(asked.id)).toEqual(['document.duplicate']);
  });
});
