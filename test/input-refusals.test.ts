import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * The inputs of the review (issue 8) that reached PostgreSQL and answered 500: each is a 400
 * that names its field, and nothing is written. test/hostile-input.test.ts walks every route
 * with many more; these are the named cases.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  const ok = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 7, connectionId: 31, subscriptions: [{ id: 501, documents: [{ id: 9001 }] }] }));
  expect(ok.status).toBe(200);
});
afterAll(() => ctx.close());

const rowCounts = async () =>
  (await ctx.database.sql`
    select (select count(*) from users) u, (select count(*) from connections) c, (select count(*) from subscriptions) s,
           (select count(*) from documents) d, (select count(*) from inbound_deliveries) k, (select count(*) from webhook_endpoints) e,
           (select count(*) from settings) st, (select max(last_update) from connections) lu`)[0];

async function expect400(res: Response, code: string, field: string) {
  const text = await res.text();
  expect(res.status, text).toBe(400);
  const body = JSON.parse(text);
  expect(body.error.code).toBe(code);
  expect(JSON.stringify(body.error)).toContain(field);
}

const sync = (mutate: (p: any) => void, id = 7001) => {
  const p: any = syncedPayload({ idWebhookData: id, userId: 7, connectionId: 31, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: 501, documents: [{ id: 9001 }, { id: 9002 }] }] });
  mutate(p);
  return ctx.sendWebhook('CONNECTION_SYNCED', p);
};

it.each([
  ['a NUL in error_message', (p: any) => (p.connection.error_message = 'a\u0000b'), 'connection.error_message'],
  ['a lone surrogate in a document name', (p: any) => (p.connection.subscriptions[0].documents[1].name = '\ud800'), 'connection.subscriptions.0.documents.1.name'],
  ['a NUL in a subscription label', (p: any) => (p.connection.subscriptions[0].label = 'x\u0000'), 'connection.subscriptions.0.label'],
  ['last_update in year 0000', (p: any) => (p.connection.last_update = '0000-01-01T00:00:00Z'), 'connection.last_update'],
  ['a naive last_update in year 0000', (p: any) => (p.connection.last_update = '0000-06-01 12:00:00'), 'connection.last_update'],
  ['a document date that does not exist', (p: any) => (p.connection.subscriptions[0].documents[0].date = '2026-02-30'), 'connection.subscriptions.0.documents.0.date'],
  ['a document id of 0', (p: any) => (p.connection.subscriptions[0].documents[1].id = 0), 'connection.subscriptions.0.documents.1.id'],
  ['a subscription id past 2^53 − 1', (p: any) => (p.connection.subscriptions[0].id = 2 ** 53), 'connection.subscriptions.0.id'],
  // The schema's cross-checks ran on the half-parsed payload and threw on the null list (500).
  ['a NUL in state beside subscriptions: null', (p: any) => ((p.connection.state = '\u0000'), (p.connection.subscriptions = null)), 'connection.state'],
  ['a NUL in a label beside documents: null', (p: any) => ((p.connection.subscriptions[0].label = '\u0000'), (p.connection.subscriptions[0].documents = null)), 'connection.subscriptions.0.label'],
])('webhook with %s: 400 naming the field, nothing written', async (_what, mutate, field) => {
  const before = await rowCounts();
  await expect400(await sync(mutate), 'invalid_payload', field);
  expect(await rowCounts()).toEqual(before);
});

it.each([
  ['/users/7/documents?min_date=2026-02-30', 'min_date'],
  ['/users/7/documents?max_date=0000-00-00', 'max_date'],
  ['/users/7/documents?type=%00', 'type'],
  ['/users/7/subscriptions/501/documents?min_date=0000-01-01', 'min_date'],
  ['/users/7/documents/9007199254740992', 'id'],
  ['/users/7/documents/0', 'id'],
  ['/users/99999999999999999999/documents', 'u'],
])('GET %s: 400 naming %s', async (path, field) => {
  await expect400(await ctx.request('GET', path), 'invalid_query', field);
});

it('POST /webhook-endpoints with a NUL in its description: 400, no endpoint', async () => {
  const before = await rowCounts();
  await expect400(await ctx.request('POST', '/webhook-endpoints', { body: { url: 'http://127.0.0.1:9/h', description: 'a\u0000b' } }), 'invalid_payload', 'description');
  await expect400(await ctx.request('POST', '/webhook-endpoints', { body: '{"url":"http://127.0.0.1:9/h","description":"\\udc00"}' }), 'invalid_payload', 'description');
  expect(await rowCounts()).toEqual(before);
});

it.each([['constructor'], ['toString'], ['__proto__'], ['hasOwnProperty']])('POST /config {"%s": "1"}: 400 invalid_config, nothing changed', async (key) => {
  const before = await rowCounts();
  await expect400(await ctx.request('POST', '/config', { body: `{${JSON.stringify(key)}: "1"}` }), 'invalid_config', key);
  expect(await rowCounts()).toEqual(before);
});

it('the dates that exist are still accepted: 29 February of a leap year, year 0001 and 9999', async () => {
  const res = await sync((p) => {
    p.connection.subscriptions[0].documents[0].date = '2024-02-29';
    p.connection.subscriptions[0].documents[1].date = '0001-01-01';
    p.connection.subscriptions[0].validity = '9999-12-31';
  }, 7002);
  expect(res.status).toBe(200);
  const docs = await (await ctx.request('GET', '/users/7/documents?min_date=0001-01-01&max_date=2024-02-29')).json();
  expect(docs.documents.map((d: any) => d.date).sort()).toEqual(['0001-01-01', '2024-02-29']);
});
