import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * User tokens (CONTRACT.md §2): several per user, revoked all at once by
 * `DELETE /users/{id}/token`, optionally expiring (`{"expires_in": seconds}`). And
 * `PUT /users/{u}/email-delivery` before the user's first sync creates the user (§8).
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const issue = async (user: number, body?: unknown) => {
  const res = await ctx.request('POST', `/users/${user}/token`, { body });
  expect(res.status).toBe(201);
  return (await res.json()) as { id_user: number; token: string; expires_at: string | null };
};
const statusWith = async (token: string, path = '/users/me/documents') => (await ctx.request('GET', path, { token })).status;

it('DELETE /users/{id}/token revokes every token of that user, and no other', async () => {
  const a1 = await issue(301);
  const a2 = await issue(301);
  const b = await issue(302);
  expect(await statusWith(a1.token)).toBe(200);
  expect(await statusWith(a2.token)).toBe(200);

  const res = await ctx.request('DELETE', '/users/301/token');
  expect(res.status).toBe(200);
  expect(await res.json()).toEqual({ id_user: 301, revoked: 2 });
  for (const t of [a1, a2]) {
    const r = await ctx.request('GET', '/users/me/documents', { token: t.token });
    expect(r.status).toBe(401);
    expect((await r.json()).error.code).toBe('unauthorized');
  }
  expect(await statusWith(b.token)).toBe(200);
  // The user and its data stay; a new token works.
  expect(await statusWith((await issue(301)).token)).toBe(200);
  // Again: nothing left to revoke but the new one.
  expect(await (await ctx.request('DELETE', '/users/301/token')).json()).toEqual({ id_user: 301, revoked: 1 });
});

it('revoking is the admin’s: a user token gets 404, no token 401', async () => {
  const t = await issue(303);
  expect((await ctx.request('DELETE', '/users/303/token', { token: t.token })).status).toBe(404);
  expect((await ctx.request('DELETE', '/users/303/token', { token: null })).status).toBe(401);
  expect(await statusWith(t.token)).toBe(200);
});

it('a token issued with expires_in stops working once it has expired', async () => {
  const before = Date.now();
  const t = await issue(304, { expires_in: 3600 });
  const expiresAt = Date.parse(t.expires_at!);
  expect(expiresAt).toBeGreaterThanOrEqual(before + 3600_000 - 5_000);
  expect(expiresAt).toBeLessThanOrEqual(Date.now() + 3600_000 + 5_000);
  expect(await statusWith(t.token)).toBe(200);
  // An hour passes (moved in the database rather than waited for).
  await ctx.database.sql`update user_tokens set expires_at = now() - interval '1 second' where user_id = 304`;
  expect(await statusWith(t.token)).toBe(401);
  // Without expires_in, a token lasts until revoked.
  const forever = await issue(304);
  expect(forever.expires_at).toBeNull();
  expect(await statusWith(forever.token)).toBe(200);
});

it.each([[0], [-1], [1.5], ['3600'], [null], [10 * 366 * 24 * 3600 + 1]])('expires_in %s is refused with 400 naming it, no token made', async (value) => {
  const res = await ctx.request('POST', '/users/305/token', { body: { expires_in: value } });
  expect(res.status).toBe(400);
  expect(JSON.stringify(await res.json())).toContain('expires_in');
  expect((await ctx.database.sql`select count(*)::int as n from user_tokens where user_id = 305`)[0].n).toBe(0);
});

it('/openapi.json documents expires_in, expires_at and the DELETE', async () => {
  const spec = await (await ctx.request('GET', '/openapi.json', { token: null })).json();
  const route = spec.paths['/users/{id}/token'];
  expect(JSON.stringify(route.post.requestBody)).toContain('expires_in');
  expect(JSON.stringify(route.post.responses['201'])).toContain('expires_at');
  expect(route.delete).toBeDefined();
});

it('PUT /users/{u}/email-delivery before the first sync creates the user, as the token route does', async () => {
  const put = await ctx.request('PUT', '/users/401/email-delivery', { body: { to: 'new.user@example.com' } });
  expect(put.status).toBe(200);
  expect((await put.json()).to).toBe('new.user@example.com');
  expect((await ctx.request('GET', '/users/401/email-delivery')).status).toBe(200);
  expect((await ctx.database.sql`select count(*)::int as n from users where id = 401`)[0].n).toBe(1);
  // Its first sync then goes through as for any user, and the setting is still there.
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 401, connectionId: 4011, subscriptions: [{ id: 40111 }] }))).status).toBe(200);
  expect((await (await ctx.request('GET', '/users/401/email-delivery')).json()).to).toBe('new.user@example.com');
  // The admin has no user behind `me`: still a 404, nothing created.
  expect((await ctx.request('PUT', '/users/me/email-delivery', { body: { to: 'x@example.com' } })).status).toBe(404);
});
