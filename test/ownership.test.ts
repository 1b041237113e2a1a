import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { applyConnectionSync } from '../src/archive/diff.js';
import { connectionSyncOf, inboundSchemas } from '../src/inbound/payloads.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { waitUntil } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * Ownership (issue 8): an id belongs to the user and connection that first
 * brought it. A webhook that would hand it to another is refused whole (409 id_conflict,
 * nothing written), and every read scopes by the caller's user at the database.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const q = async <T = Record<string, unknown>>(query: string) => ctx.database.db.execute<T & Record<string, unknown>>(sql.raw(query));
const n = async (query: string) => (await q<{ n: number }>(`select count(*)::int as n from ${query}`))[0].n;

/** Every table a refused webhook must leave as it was. */
async function snapshot() {
  const rows = async (t: string, cols: string) => q(`select ${cols} from ${t} order by 1`);
  return {
    users: await rows('users', 'id'),
    connections: await rows('connections', 'id, user_id, last_update, state'),
    subscriptions: await rows('subscriptions', 'id, connection_id, user_id, label, deleted'),
    documents: await rows('documents', 'id, subscription_id, user_id, name'),
    deliveries: await rows('inbound_deliveries', 'key'),
    events: await n('events'),
    jobs: await n('graphile_worker.jobs'),
  };
}

let webhookId = 70_000;
const send = (p: ReturnType<typeof syncedPayload>) => ctx.sendWebhook('CONNECTION_SYNCED', { ...p, id_webhook_data: ++webhookId });
const token = async (u: number) => (await (await ctx.request('POST', `/users/${u}/token`)).json()).token as string;

async function expectConflict(res: Response, ids: Record<string, number[]>) {
  expect(res.status).toBe(409);
  const body = await res.json();
  expect(body.error.code).toBe('id_conflict');
  expect(body.error.details).toEqual(expect.objectContaining(ids));
  for (const list of Object.values(ids)) for (const id of list) expect(body.error.message).toContain(String(id));
}

describe("issue 8's story: user 8 syncs subscription 501 of user 7", () => {
  beforeAll(async () => {
    const res = await send(syncedPayload({ userId: 7, connectionId: 31, subscriptions: [{ id: 501, documents: [{ id: 9001 }, { id: 9002 }] }] }));
    expect(res.status).toBe(200);
  });

  it('is refused whole with 409 id_conflict naming 501, and writes nothing', async () => {
    const before = await snapshot();
    const res = await send(syncedPayload({ userId: 8, connectionId: 32, subscriptions: [{ id: 501 }, { id: 601, documents: [{ id: 9601 }] }] }));
    await expectConflict(res, { subscriptions: [501] });
    expect(await snapshot()).toEqual(before);
  });

  it("user 8 then reads none of user 7's documents through 501", async () => {
    const t8 = await token(8);
    for (const path of ['/users/me/subscriptions/501/documents', '/users/8/subscriptions/501/documents', '/users/me/subscriptions/501']) {
      const res = await ctx.request('GET', path, { token: t8 });
      expect(res.status, path).toBe(404);
    }
    const mine = await (await ctx.request('GET', '/users/me/documents?all', { token: t8 })).json();
    expect(mine.total).toBe(0);
  });

  it("a document of user 7 listed under user 8's own subscription is refused too", async () => {
    const before = await snapshot();
    const res = await send(syncedPayload({ userId: 8, connectionId: 32, subscriptions: [{ id: 601, documents: [{ id: 9001 }, { id: 9601 }] }] }));
    await expectConflict(res, { documents: [9001] });
    expect(await snapshot()).toEqual(before);
    const [doc] = await q<{ subscription_id: number; user_id: number }>('select subscription_id::int, user_id::int from documents where id = 9001');
    expect(doc).toEqual({ subscription_id: 501, user_id: 7 });
  });

  it("user 7's connection synced by user 8 is refused with 409, not 400", async () => {
    const before = await snapshot();
    const res = await send(syncedPayload({ userId: 8, connectionId: 31, subscriptions: [{ id: 501 }] }));
    await expectConflict(res, { connections: [31] });
    expect(await snapshot()).toEqual(before);
  });

  it("CONNECTION_DELETED of user 8's own connection leaves user 7's documents, USER_DELETED of 7 erases them all", async () => {
    expect((await send(syncedPayload({ userId: 8, connectionId: 32, subscriptions: [{ id: 601, documents: [{ id: 9601 }] }] }))).status).toBe(200);
    expect(await (await ctx.sendWebhook('CONNECTION_DELETED', { id: 32, id_user: 8 })).json()).toEqual({ status: 'processed' });
    expect(await n('documents where id in (9001, 9002)')).toBe(2);
    expect(await n('documents where id = 9601')).toBe(0);

    expect(await (await ctx.sendWebhook('USER_DELETED', { id: 7 })).json()).toEqual({ status: 'processed' });
    expect(await n('subscriptions where id = 501')).toBe(0);
    expect(await n('documents where id in (9001, 9002)')).toBe(0);
  });
});

describe('within one user', () => {
  let u = 20;
  const fresh = () => ++u;

  it('a subscription may not move to another connection of the same user', async () => {
    const user = fresh();
    expect((await send(syncedPayload({ userId: user, connectionId: user * 10 + 1, subscriptions: [{ id: user * 100 + 1 }] }))).status).toBe(200);
    const before = await snapshot();
    const res = await send(syncedPayload({ userId: user, connectionId: user * 10 + 2, subscriptions: [{ id: user * 100 + 1 }] }));
    await expectConflict(res, { subscriptions: [user * 100 + 1] });
    expect(await snapshot()).toEqual(before);
  });

  it('a document may not move to a subscription of another connection', async () => {
    const user = fresh();
    const doc = user * 1000 + 1;
    expect((await send(syncedPayload({ userId: user, connectionId: user * 10 + 1, subscriptions: [{ id: user * 100 + 1, documents: [{ id: doc }] }] }))).status).toBe(200);
    const before = await snapshot();
    const res = await send(syncedPayload({ userId: user, connectionId: user * 10 + 2, subscriptions: [{ id: user * 100 + 2, documents: [{ id: doc }] }] }));
    await expectConflict(res, { documents: [doc] });
    expect(await snapshot()).toEqual(before);
  });

  it('a document may move between subscriptions of one connection', async () => {
    const user = fresh();
    const c = user * 10 + 1, s1 = user * 100 + 1, s2 = user * 100 + 2, doc = user * 1000 + 1;
    expect((await send(syncedPayload({ userId: user, connectionId: c, subscriptions: [{ id: s1, documents: [{ id: doc }] }, { id: s2 }] }))).status).toBe(200);
    const res = await send(syncedPayload({ userId: user, connectionId: c, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: s1 }, { id: s2, documents: [{ id: doc }] }] }));
    expect(res.status).toBe(200);
    expect((await res.json()).summary.documents).toEqual({ added: 0, updated: 1, unchanged: 0 });
    expect((await (await ctx.request('GET', `/users/${user}/documents/${doc}`)).json()).id_subscription).toBe(s2);
  });
});

describe('concurrent first claims of one new id', () => {
  /**
   * `first` applied in a transaction held open (its new rows not yet committed) while
   * `second` is sent; once `second` waits on it (pg_blocking_pids), `first` commits.
   * Returns the answer to `second`.
   */
  async function whileFirstHolds(first: ReturnType<typeof syncedPayload>, second: ReturnType<typeof syncedPayload>) {
    const schemas = inboundSchemas(ctx.config.webhookTimezone);
    const sync = connectionSyncOf(schemas.connectionSynced.parse(first).connection);
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let pid = 0;
    let applied = false;
    const holding = ctx.deps.db.transaction(async (tx) => {
      pid = (await tx.execute<{ pid: number }>(sql`select pg_backend_pid() as pid`))[0].pid;
      await applyConnectionSync(tx, sync);
      applied = true;
      await gate;
    });
    await waitUntil(async () => applied, 10_000, 'the first sync to apply');
    const answer = send(second);
    await waitUntil(async () => (await n(`pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`)) > 0, 10_000, 'the second sync to wait on the first');
    release();
    await holding;
    return answer;
  }

  it('the second sync waits for the first, then is refused: the id is not moved', async () => {
    // User 41's sync holds its transaction open while user 42 lists the same subscription and document ids.
    const second = await whileFirstHolds(
      syncedPayload({ userId: 41, connectionId: 411, subscriptions: [{ id: 4111, documents: [{ id: 41111 }] }] }),
      syncedPayload({ userId: 42, connectionId: 421, subscriptions: [{ id: 4111, documents: [{ id: 41111 }] }] }),
    );
    await expectConflict(second, { subscriptions: [4111] });
    const rows = await q<{ id: number; user_id: number }>('select id::int, user_id::int from subscriptions where id = 4111 union all select id::int, user_id::int from documents where id = 41111');
    expect(rows).toEqual([{ id: 4111, user_id: 41 }, { id: 41111, user_id: 41 }]);
    expect(await n('connections where id = 421')).toBe(0);
  });

  it('of a document alone (each sync under its own subscription): the second is refused naming the document', async () => {
    // The second sync's documents upsert starts before the first commits, so the document
    // is not among the rows it read first: it only meets it on inserting.
    const second = await whileFirstHolds(
      syncedPayload({ userId: 43, connectionId: 431, subscriptions: [{ id: 4311, documents: [{ id: 43111 }] }] }),
      syncedPayload({ userId: 44, connectionId: 441, subscriptions: [{ id: 4411, documents: [{ id: 44111 }, { id: 43111 }] }] }),
    );
    await expectConflict(second, { documents: [43111] });
    const rows = await q<{ id: number; user_id: number }>('select id::int, user_id::int from documents where id in (43111, 44111) order by id');
    expect(rows).toEqual([{ id: 43111, user_id: 43 }]);
    expect(await n('connections where id = 441')).toBe(0);
  });
});

describe('inside one payload, ids agree with their parents', () => {
  const cases: { name: string; mutate: (p: any) => void; path: string }[] = [
    { name: 'a subscription of another connection', mutate: (p) => (p.connection.subscriptions[0].id_connection = 999), path: 'connection.subscriptions.0.id_connection' },
    { name: 'a subscription of another user', mutate: (p) => (p.connection.subscriptions[0].id_user = 999), path: 'connection.subscriptions.0.id_user' },
    { name: 'a document of another subscription', mutate: (p) => (p.connection.subscriptions[1].documents[0].id_subscription = 5001), path: 'connection.subscriptions.1.documents.0.id_subscription' },
    { name: 'a document of another user', mutate: (p) => (p.connection.subscriptions[0].documents[0].id_user = 999), path: 'connection.subscriptions.0.documents.0.id_user' },
    { name: 'one document id twice, under two subscriptions', mutate: (p) => p.connection.subscriptions[1].documents.push({ ...p.connection.subscriptions[0].documents[0], id_subscription: 5002 }), path: 'connection.subscriptions.1.documents.1.id' },
    { name: 'user and connection disagreeing', mutate: (p) => (p.user.id = 999), path: 'connection.id_user' },
  ];
  it.each(cases)('$name: 400 invalid_payload naming $path', async ({ mutate, path }) => {
    const p = syncedPayload({ userId: 50, connectionId: 500, subscriptions: [{ id: 5001, documents: [{ id: 50011 }] }, { id: 5002, documents: [{ id: 50021 }] }] });
    (p.connection.subscriptions[0].documents[0] as any).id_user = 50;
    mutate(p);
    const before = await snapshot();
    const res = await send(p);
    expect(res.status).toBe(400);
    const body = await res.json();
    expect(body.error.code).toBe('invalid_payload');
    expect(body.error.details.map((d: { path: string }) => d.path)).toContain(path);
    expect(await snapshot()).toEqual(before);
  });

  it('ids that agree (or are left out, as Powens may) are accepted', async () => {
    const p = syncedPayload({ userId: 51, connectionId: 510, subscriptions: [{ id: 5101, documents: [{ id: 51011 }] }] });
    (p.connection.subscriptions[0].documents[0] as any).id_user = 51;
    delete (p.connection.subscriptions[0] as any).id_connection;
    expect((await send(p)).status).toBe(200);
  });
});

describe('CONNECTION_DELETED names its owner', () => {
  it('whose id_user does not own the connection: 409 id_conflict, nothing erased', async () => {
    expect((await send(syncedPayload({ userId: 60, connectionId: 600, subscriptions: [{ id: 6001, documents: [{ id: 60011 }] }] }))).status).toBe(200);
    const before = await snapshot();
    const res = await ctx.sendWebhook('CONNECTION_DELETED', { id: 600, id_user: 61 });
    await expectConflict(res, { connections: [600] });
    expect(await snapshot()).toEqual(before);
    expect(await n('erasures where id = 600')).toBe(0);
    expect(await (await ctx.sendWebhook('CONNECTION_DELETED', { id: 600, id_user: 60 })).json()).toEqual({ status: 'processed' });
    expect(await n('documents where id = 60011')).toBe(0);
  });
});

describe('reads scope by the caller at the database', () => {
  // Rows as the unfixed diff left them: subscription 801 moved to user 80, its document still user 79's.
  beforeAll(async () => {
    await q(`insert into users (id) values (79), (80)`);
    await q(`insert into connections (id, user_id) values (790, 79), (800, 80)`);
    await q(`insert into subscriptions (id, connection_id, user_id) values (801, 800, 80), (802, 800, 79)`);
    await q(`insert into documents (id, subscription_id, user_id, name, date) values (8011, 801, 79, 'Bill of user 79', '2026-11-01')`);
  });

  it("a subscription's documents are the caller's only", async () => {
    const t80 = await token(80);
    for (const path of ['/users/me/subscriptions/801/documents', '/users/80/subscriptions/801/documents']) {
      const res = await ctx.request('GET', path, { token: t80 });
      expect(res.status, path).toBe(200);
      expect(await res.json()).toMatchObject({ documents: [], total: 0, first_date: null });
    }
    const admin = await (await ctx.request('GET', '/users/80/subscriptions/801/documents')).json();
    expect(admin.total).toBe(0);
  });

  it("a connection's subscriptions are the caller's only", async () => {
    const res = await ctx.request('GET', '/users/me/connections/800/subscriptions?all', { token: await token(80) });
    expect((await res.json()).subscriptions.map((s: { id: number }) => s.id)).toEqual([801]);
  });
});
