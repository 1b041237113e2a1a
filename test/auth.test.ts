import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { isPublicPath } from '../src/http/auth.js';
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

/**
 * Protected by default (CONTRACT.md §2): the route list is /openapi.json itself, so a route
 * added tomorrow is checked without anyone adding it here.
 */
describe('every route of /openapi.json', () => {
  type Op = { method: string; path: string; op: Record<string, any> };
  let routes: Op[];
  beforeAll(async () => {
    const spec = await (await ctx.request('GET', '/openapi.json', { token: null })).json();
    routes = Object.entries(spec.paths as Record<string, Record<string, any>>).flatMap(([path, ops]) =>
      Object.entries(ops).map(([method, op]) => ({ method: method.toUpperCase(), path, op })),
    );
    expect(routes.length).toBeGreaterThan(20);
  });
  const concrete = (path: string, u = '201') => path.replace('{u}', u).replace(/\{(\w+)\}/g, (_m, name) => (name === 'id' ? '1' : 'x'));

  it('answers 401 without a token, and with an unknown one, unless declared public', async () => {
    const failures: string[] = [];
    for (const { method, path } of routes.filter((r) => !isPublicPath(concrete(r.path)))) {
      for (const token of [null, 'drt_unknown']) {
        const res = await ctx.request(method, concrete(path), { token, body: method === 'GET' || method === 'DELETE' ? undefined : {} });
        const body = await res.json().catch(() => null);
        if (res.status !== 401 || body?.error?.code !== 'unauthorized') failures.push(`${method} ${path} token=${token}: ${res.status}`);
      }
    }
    expect(failures).toEqual([]);
  });

  it('documents a bearer token on every protected route and none on the public ones', () => {
    const wrong = routes.filter((r) => isPublicPath(concrete(r.path)) === JSON.stringify(r.op.security ?? []).includes('bearerAuth'));
    expect(wrong.map((r) => `${r.method} ${r.path}`)).toEqual([]);
  });

  it("a user token gets 404 for another user's id on every /users/{u} route", async () => {
    const failures: string[] = [];
    for (const { method, path } of routes.filter((r) => r.path.startsWith('/users/{u}/'))) {
      const res = await ctx.request(method, concrete(path, '202'), { token: alice, body: method === 'PUT' || method === 'POST' ? { to: 'x@example.com' } : undefined });
      if (res.status !== 404) failures.push(`${method} ${path}: ${res.status}`);
    }
    expect(failures).toEqual([]);
  });

  it('the public routes need no token, and nothing else does', async () => {
    expect((await ctx.request('GET', '/health', { token: null })).status).toBe(200);
    expect((await ctx.request('GET', '/openapi.json', { token: null })).status).toBe(200);
    expect((await (await ctx.request('GET', '/files/1?exp=1&sig=x', { token: null })).json()).error.code).toBe('invalid_link');
    expect((await (await ctx.request('POST', '/webhooks/powens/USER_DELETED', { token: null, body: { id: 1 } })).json()).error.code).toBe('invalid_signature');
    // A path that is no route tells nothing before a token.
    expect((await ctx.request('GET', '/no-such-route', { token: null })).status).toBe(401);
    expect((await ctx.request('GET', '/no-such-route')).status).toBe(404);
  });

  it('a route added to the app later is protected without being listed anywhere', async () => {
    const app = createApp(ctx.deps);
    app.get('/internal/added-later', (c) => c.json({ secret: 'anyone?' }));
    expect((await app.request('/internal/added-later')).status).toBe(401);
    const res = await app.request('/internal/added-later', { headers: { authorization: `Bearer ${ctx.config.adminToken}` } });
    expect(await res.json()).toEqual({ secret: 'anyone?' });
  });
});
