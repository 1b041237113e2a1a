import { gzipSync } from 'node:zlib';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, fixture, INBOUND_SECRET, type TestContext } from './helpers/context.js';
import { powensHeaders, syncedPayload } from './helpers/webhooks.js';

// Inbound webhooks: signature, schema, idempotency, erasure webhooks.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const count = async (table: string) =>
  (await ctx.database.db.execute<{ n: number }>(sql.raw(`select count(*)::int as n from ${table}`)))[0].n;

/** Everything a rejected delivery must leave untouched. */
async function snapshot() {
  return {
    deliveries: await count('inbound_deliveries'),
    users: await count('users'),
    connections: await count('connections'),
    subscriptions: await count('subscriptions'),
    documents: await count('documents'),
    jobs: await count('graphile_worker.jobs'),
  };
}

const post = async (path: string, body: string | Buffer, headers: Record<string, string>): Promise<Response> =>
  ctx.app.request(path, { method: 'POST', headers, body: typeof body === 'string' ? body : new Uint8Array(body) });

describe('POST /webhooks/powens/{EVENT}', () => {
  it('processes the Powens fixture, with Paris-time datetimes and currency objects', async () => {
    const res = await ctx.sendWebhook('CONNECTION_SYNCED', fixture('CONNECTION_SYNCED'));
    expect(res.status).toBe(200);
    expect(await res.json()).toEqual({
      status: 'processed',
      summary: { subscriptions: { added: 2, deleted: 0, restored: 0, unchanged: 0 }, documents: { added: 2, updated: 0, unchanged: 0 } },
    });
    const conn = await (await ctx.request('GET', '/users/7/connections/31')).json();
    // "2026-11-20 09:00:12" in Paris (CET, UTC+1) is 08:00:12Z.
    expect(conn).toMatchObject({ id: 31, id_user: 7, id_connector: 40, state: null, last_update: '2026-11-20T08:00:12.000Z', captcha: null });
    const doc = await (await ctx.request('GET', '/users/7/documents/9001')).json();
    expect(doc).toMatchObject({ currency: 'EUR', date: '2026-11-01', duedate: '2026-11-15', total_amount: 42.5, issuer: 'Acme Energie' });
  });

  it('answers duplicate for a delivery already processed, and changes nothing', async () => {
    const before = await snapshot();
    const res = await ctx.sendWebhook('CONNECTION_SYNCED', fixture('CONNECTION_SYNCED'));
    expect(await res.json()).toEqual({ status: 'duplicate' });
    expect(await snapshot()).toEqual(before);
  });

  it('processes concurrent copies of one delivery exactly once', async () => {
    const body = syncedPayload({ idWebhookData: 555001, userId: 80, connectionId: 801, subscriptions: [{ id: 8011, documents: [{ id: 80111 }, { id: 80112 }] }] });
    const results = await Promise.all(Array.from({ length: 8 }, () => ctx.sendWebhook('CONNECTION_SYNCED', body).then((r) => r.json())));
    expect(results.filter((r) => r.status === 'processed')).toHaveLength(1);
    expect(results.filter((r) => r.status === 'duplicate')).toHaveLength(7);
    const jobs = await ctx.database.db.execute<{ n: number }>(sql`select count(*)::int as n from graphile_worker.jobs where key in ('announce:80111', 'announce:80112')`);
    expect(jobs[0].n).toBe(2);
  });

  it('uses the sha256 of the body as the key when there is no id_webhook_data', async () => {
    const body = JSON.stringify(syncedPayload({ userId: 81, connectionId: 811, subscriptions: [{ id: 8111 }] }));
    expect((await (await ctx.sendWebhook('CONNECTION_SYNCED', body)).json()).status).toBe('processed');
    expect((await (await ctx.sendWebhook('CONNECTION_SYNCED', body)).json()).status).toBe('duplicate');
  });

  it('accepts gzip bodies (signature over the JSON)', async () => {
    const path = '/webhooks/powens/CONNECTION_SYNCED';
    const raw = JSON.stringify(syncedPayload({ idWebhookData: 555002, userId: 82, connectionId: 821, subscriptions: [{ id: 8211 }] }));
    const res = await post(path, gzipSync(raw), { ...powensHeaders(INBOUND_SECRET, path, raw), 'content-encoding': 'gzip', 'content-type': 'application/json' });
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe('processed');
  });

  describe('rejections write nothing', () => {
    const path = '/webhooks/powens/CONNECTION_SYNCED';
    const raw = JSON.stringify(syncedPayload({ idWebhookData: 666001, userId: 90, connectionId: 901, subscriptions: [{ id: 9011 }] }));

    const cases: [string, () => Promise<Response>, number, string][] = [
      ['no signature', () => post(path, raw, {}), 401, 'invalid_signature'],
      ['a wrong secret', () => post(path, raw, powensHeaders('not-the-secret', path, raw)), 401, 'invalid_signature'],
      ['a tampered body', () => post(path, raw.replace('901', '902'), powensHeaders(INBOUND_SECRET, path, raw)), 401, 'invalid_signature'],
      ['another path signed', () => post(path, raw, powensHeaders(INBOUND_SECRET, '/webhooks/powens/USER_DELETED', raw)), 401, 'invalid_signature'],
      ['an old date', () => post(path, raw, powensHeaders(INBOUND_SECRET, path, raw, new Date(Date.now() - 3600_000).toISOString())), 401, 'invalid_signature'],
      ['invalid JSON', () => post(path, '{"connection":', powensHeaders(INBOUND_SECRET, path, '{"connection":')), 400, 'invalid_payload'],
      ['an unknown event', () => post('/webhooks/powens/ACCOUNT_SYNCED', raw, powensHeaders(INBOUND_SECRET, '/webhooks/powens/ACCOUNT_SYNCED', raw)), 404, 'unknown_event'],
      ['bad gzip', () => post(path, 'not gzip', { ...powensHeaders(INBOUND_SECRET, path, 'not gzip'), 'content-encoding': 'gzip' }), 400, 'invalid_payload'],
    ];
    it.each(cases)('%s', async (_name, send, status, code) => {
      const before = await snapshot();
      const res = await send();
      expect(res.status).toBe(status);
      const body = await res.json();
      expect(body.error.code).toBe(code);
      expect(typeof body.error.message).toBe('string');
      expect(await snapshot()).toEqual(before);
    });

    const invalid: [string, (p: any) => void][] = [
      ['a missing connection', (p) => delete p.connection],
      ['a string id', (p) => (p.connection.id = 'abc')],
      ['an id over 2^53', (p) => (p.connection.subscriptions[0].id = 2 ** 60)],
      ['a bad date', (p) => (p.connection.subscriptions[0].documents[0].date = '2026-13-45')],
      ['a bad datetime', (p) => (p.connection.last_update = 'yesterday')],
      ['a duplicate document id', (p) => p.connection.subscriptions[0].documents.push({ ...p.connection.subscriptions[0].documents[0] })],
      ['user and connection disagreeing', (p) => (p.user.id = 91)],
    ];
    it.each(invalid)('a payload with %s: 400 invalid_payload with details', async (_name, mutate) => {
      const p = syncedPayload({ idWebhookData: 666002, userId: 90, connectionId: 901, subscriptions: [{ id: 9011, documents: [{ id: 90111 }] }] });
      mutate(p);
      const before = await snapshot();
      const res = await ctx.sendWebhook('CONNECTION_SYNCED', p);
      expect(res.status).toBe(400);
      const body = await res.json();
      expect(body.error.code).toBe('invalid_payload');
      expect(Array.isArray(body.error.details)).toBe(true);
      expect(await snapshot()).toEqual(before);
    });

    it('a body over 64 MiB: 413 payload_too_large', async () => {
      const big = Buffer.alloc(64 * 1024 * 1024 + 1, 0x20);
      // Signed (an unsigned one is refused before its size matters: 401).
      const res = await post(path, big, { ...powensHeaders(INBOUND_SECRET, path, big), 'content-type': 'application/json' });
      expect(res.status).toBe(413);
      expect((await res.json()).error.code).toBe('payload_too_large');
    });

    it('a gzip bomb over 64 MiB once inflated: 413', async () => {
      const bomb = gzipSync(Buffer.alloc(65 * 1024 * 1024, 0x20));
      const inflated = Buffer.alloc(0);
      const res = await post(path, bomb, { ...powensHeaders(INBOUND_SECRET, path, inflated), 'content-encoding': 'gzip' });
      expect(res.status).toBe(413);
    });
  });

  it('keeps extra fields out and unknown document types as they come', async () => {
    const p = syncedPayload({ idWebhookData: 555003, userId: 83, connectionId: 831, subscriptions: [{ id: 8311, documents: [{ id: 83111, type: 'noticeOfAssessment' }] }] });
    (p.connection as any).accounts = [{ id: 1, balance: 10 }];
    (p.connection.subscriptions[0].documents[0] as any).id_type = 99;
    expect((await ctx.sendWebhook('CONNECTION_SYNCED', p)).status).toBe(200);
    expect((await (await ctx.request('GET', '/users/83/documents/83111')).json()).type).toBe('noticeOfAssessment');
  });

  it('accepts ISO datetimes with an offset and YYYY-MM-DD dates', async () => {
    const p = syncedPayload({ idWebhookData: 555004, userId: 84, connectionId: 841, lastUpdate: '2026-07-01T10:00:00+02:00', subscriptions: [{ id: 8411 }] });
    expect((await ctx.sendWebhook('CONNECTION_SYNCED', p)).status).toBe(200);
    expect((await (await ctx.request('GET', '/users/84/connections/841')).json()).last_update).toBe('2026-07-01T08:00:00.000Z');
  });

  it('USER_DELETED erases the user, wrapped or not, also for unknown ids', async () => {
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ idWebhookData: 555005, userId: 85, connectionId: 851, subscriptions: [{ id: 8511, documents: [{ id: 85111 }] }] }));
    const res = await ctx.sendWebhook('USER_DELETED', { id_webhook_data: 555006, user: { id: 85 } });
    expect(await res.json()).toEqual({ status: 'processed' });
    expect((await ctx.request('GET', '/users/85/subscriptions')).status).toBe(404);
    expect(await count('documents where id = 85111')).toBe(0);
    const unknown = await ctx.sendWebhook('USER_DELETED', fixture('USER_DELETED'));
    expect(await unknown.json()).toEqual({ status: 'processed' });
  });

  it('CONNECTION_DELETED with the fixture erases connection 31', async () => {
    const res = await ctx.sendWebhook('CONNECTION_DELETED', fixture('CONNECTION_DELETED'));
    expect(await res.json()).toEqual({ status: 'processed' });
    expect((await ctx.request('GET', '/users/7/connections/31')).status).toBe(404);
    expect(await count('subscriptions where connection_id = 31')).toBe(0);
  });
});
