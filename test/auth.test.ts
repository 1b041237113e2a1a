import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * Bearer auth for every user route: 401 without or with an unknown token; a user token
 * reaches its own data through `me` and its id, and gets 404 — never 403, never the object —
 * for another user's id or objects. Admin-only routes answer a user token 404 too.
 */
let ctx: TestContext;
let alice: string;
let bob: string;
// Alice (user 201) owns connection 2011, subscription 20111, document 201111; Bob (202) likewise.
beforeAll(async () => {
  ctx = await createTestContext();
  for (const u of [201, 202]) {
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ idWebhookData: u, userId: u, connectionId: u * 10 + 1, subscriptions: [{ id: u * 100 + 11, documents: [{ id: u * 1000 + 111 }] }] }));
  }
  const issue = async (u: number) => (await (await ctx.request('POST', `/users/${u}/token`)).json()).token as string;
  alice = await issue(201);
  bob = await issue(202);
  for (const u of [201, 202]) {
    expect((await ctx.request('PUT', `/users/${u}/email-delivery`, { body: { to: `u${u}@example.com` } })).status).toBe(200);
  }
});
afterAll(() => ctx.close());

/** Routes under /users/{u}: `{u}` is replaced, `{c}`, `{s}`, `{d}` by the owner's objects. */
const userRoutes: [method: string, path: string, okStatus: number][] = [
  ['GET', '/users/{u}/connections', 200],
  ['GET', '/users/{u}/connections/{c}', 200],
  ['GET', '/users/{u}/connections/{c}/subscriptions', 200],
  ['GET', '/users/{u}/subscriptions', 200],
  ['GET', '/users/{u}/subscriptions/{s}', 200],
  ['GET', '/users/{u}/subscriptions/{s}/documents', 200],
  ['GET', '/users/{u}/documents', 200],
  ['GET', '/users/{u}/documents/{d}', 200],
  ['GET', '/users/{u}/email-delivery', 200],
];
const fill = (path: string, u: string, owner: number) =>
  path.replace('{u}', u).replace('{c}', String(owner * 10 + 1)).replace('{s}', String(owner * 100 + 11)).replace('{d}', String(owner * 1000 + 111));

describe.each(userRoutes)('%s %s', (method, path, okStatus) => {
  it('401 without a token or with an unknown one', async () => {
    for (const token of [null, 'drt_unknown']) {
      const res = await ctx.request(method, fill(path, '201', 201), { token });
      expect(res.status).toBe(401);
      expect((await res.json()).error.code).toBe('unauthorized');
    }
  });

  it("reaches the user's own data through me and its id", async () => {
    expect((await ctx.request(method, fill(path, 'me', 201), { token: alice })).status).toBe(okStatus);
    expect((await ctx.request(method, fill(path, '201', 201), { token: alice })).status).toBe(okStatus);
  });

  it("404 for another user's id, and for another user's objects under me", async () => {
    for (const p of [fill(path, '202', 202), fill(path, 'me', 202), fill(path, '202', 201)]) {
      if (p === fill(path, 'me', 201)) continue; // list routes without an object id are the caller's own
      const res = await ctx.request(method, p, { token: alice });
      expect(res.status, p).toBe(404);
      const body = await res.json();
      expect(body.error.code).toBe('not_found');
      expect(JSON.stringify(body)).not.toContain('"id_user":202');
    }
  });

  it('the admin reaches any user by id', async () => {
    expect((await ctx.request(method, fill(path, '202', 202))).status).toBe(okStatus);
  });
});

describe('admin-only routes', () => {
  const adminRoutes: [string, string, unknown?][] = [
    ['GET', '/config'],
    ['POST', '/config', { force_pdf: '1' }],
    ['POST', '/users/203/token'],
  ];
  it.each(adminRoutes)('%s %s: 401 without a token, 404 for a user token', async (method, path, body) => {
    expect((await ctx.request(method, path, { token: null, body })).status).toBe(401);
    const res = await ctx.request(method, path, { token: bob, body });
    expect(res.status).toBe(404);
  });

  it('the admin token has no user behind me', async () => {
    expect((await ctx.request('GET', '/users/me/documents')).status).toBe(404);
  });

  it('DELETE of another user\'s connection is a 404 and erases nothing', async () => {
    expect((await ctx.request('DELETE', '/users/me/connections/2021', { token: alice })).status).toBe(404);
    expect((await ctx.request('GET', '/users/202/connections/2021')).status).toBe(200);
    expect((await ctx.request('DELETE', '/users/me/connections/2021', { token: bob })).status).toBe(204);
    expect((await ctx.request('GET', '/users/202/connections/2021')).status).toBe(404);
  });

  it('tokens are stored hashed', async () => {
    const rows = await ctx.database.sql`select token_hash from user_tokens`;
    expect(rows.map((r) => r.token_hash)).not.toContain(alice);
    expect(rows.every((r) => /^[0-9a-f]{64}$/.test(r.token_hash))).toBe(true);
  });
});
