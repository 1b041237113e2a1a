import { sql } from 'drizzle-orm';
import { Webhook } from 'svix';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint } from './helpers/notify.js';
import { startReceiver, type Receiver } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

// The webhook endpoints API: admin only, validated URLs, secrets shown once, rotation.
let ctx: TestContext;
let strict: TestContext;
let userToken: string;
let r: Receiver;
beforeAll(async () => {
  [ctx, strict] = await Promise.all([createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' }), createTestContext()]);
  userToken = (await (await ctx.request('POST', '/users/61/token')).json()).token;
  r = await startReceiver();
});
afterAll(async () => {
  await Promise.all([ctx.close(), strict.close()]);
  await r.close();
});

describe('webhook endpoints API', () => {
  it('creates an endpoint with a whsec_ secret, lists it without the secret, deletes it', async () => {
    const res = await ctx.request('POST', '/webhook-endpoints', { body: { url: 'https://example.com/hook', events: ['document.created'], description: 'accounting' } });
    expect(res.status).toBe(201);
    const ep = await res.json();
    expect(ep).toMatchObject({ url: 'https://example.com/hook', events: ['document.created'], description: 'accounting', disabled: false });
    expect(ep.id).toMatch(/^ep_/);
    expect(ep.secret).toMatch(/^whsec_/);
    const n = Buffer.from(ep.secret.slice(6), 'base64').length;
    expect(n >= 24 && n <= 64).toBe(true);

    const list = await (await ctx.request('GET', '/webhook-endpoints')).json();
    const listed = list.endpoints.find((e: any) => e.id === ep.id);
    expect(listed).toMatchObject({ id: ep.id, url: ep.url, events: ['document.created'], disabled: false });
    expect(listed).not.toHaveProperty('secret');
    expect(JSON.stringify(list)).not.toContain(ep.secret.slice(6, 20));

    expect((await ctx.request('DELETE', `/webhook-endpoints/${ep.id}`)).status).toBe(204);
    const again = await ctx.request('DELETE', `/webhook-endpoints/${ep.id}`);
    expect(again.status).toBe(404);
    expect((await again.json()).error.code).toBe('not_found');
  });

  it('refuses bad input with a clear error and stores nothing', async () => {
    const before = (await (await ctx.request('GET', '/webhook-endpoints')).json()).endpoints.length;
    const cases: [unknown, RegExp][] = [
      [{ url: 'ftp://example.com/x' }, /http/],
      [{ url: 'not a url' }, /URL/],
      [{ url: 'https://user:pw@example.com/' }, /credentials/],
      [{ url: 'https://example.com/', events: ['document.deleted'] }, /invalid/],
      [{}, /invalid/],
    ];
    for (const [body, message] of cases) {
      const res = await ctx.request('POST', '/webhook-endpoints', { body });
      expect(res.status, JSON.stringify(body)).toBe(400);
      const err = (await res.json()).error;
      expect(err.code).toBe('invalid_payload');
      expect(err.message).toMatch(message);
    }
    expect((await (await ctx.request('GET', '/webhook-endpoints')).json()).endpoints.length).toBe(before);
  });

  it('refuses private and loopback addresses unless FETCH_ALLOW_PRIVATE_NETWORKS=1', async () => {
    for (const url of ['http://127.0.0.1:8080/x', 'http://localhost/x', 'http://10.0.0.5/', 'http://169.254.169.254/latest', 'http://[::1]/', 'http://[::ffff:127.0.0.1]/']) {
      const res = await strict.request('POST', '/webhook-endpoints', { body: { url } });
      expect(res.status, url).toBe(400);
      expect((await res.json()).error.message).toMatch(/private/);
    }
    expect((await strict.request('POST', '/webhook-endpoints', { body: { url: 'https://93.184.215.14/hook' } })).status).toBe(201);
    expect((await ctx.request('POST', '/webhook-endpoints', { body: { url: 'http://127.0.0.1:8080/x' } })).status).toBe(201);
  });

  it('never delivers to a private address, even if the endpoint got in', async () => {
    // Registered while allowed, then the service runs without the flag: the delivery itself refuses.
    const res = await strict.request('POST', '/webhook-endpoints', { body: { url: 'https://93.184.215.14/hook' } });
    const ep = await res.json();
    await strict.deps.db.execute(sql`update webhook_endpoints set url = ${r.url} where id = ${ep.id}`);
    await strict.startWorker();
    await strict.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 62, connectionId: 620, subscriptions: [{ id: 6200 }] }));
    const rows = await waitForAttempt(strict, ep.id);
    expect(rows.error).toMatch(/private or reserved address/);
    expect(rows.status_code).toBeNull();
    expect(r.received).toHaveLength(0);
  });

  it('answers a user token 404 on every endpoint route, and 401 without a token', async () => {
    const ep = await createEndpoint(ctx, { url: 'https://example.com/a' });
    const routes: [string, string][] = [
      ['POST', '/webhook-endpoints'],
      ['GET', '/webhook-endpoints'],
      ['DELETE', `/webhook-endpoints/${ep.id}`],
      ['POST', `/webhook-endpoints/${ep.id}/rotate-secret`],
      ['GET', `/webhook-endpoints/${ep.id}/deliveries`],
      ['POST', `/webhook-endpoints/${ep.id}/replay`],
      ['POST', `/webhook-endpoints/${ep.id}/enable`],
    ];
    for (const [method, path] of routes) {
      const res = await ctx.request(method, path, { token: userToken, body: method === 'POST' ? { url: 'https://example.com/b' } : undefined });
      expect(res.status, `${method} ${path}`).toBe(404);
      expect((await ctx.request(method, path, { token: null })).status).toBe(401);
    }
    const list = await (await ctx.request('GET', '/webhook-endpoints')).json();
    expect(list.endpoints.some((e: any) => e.id === ep.id)).toBe(true);
    expect(list.endpoints.some((e: any) => e.url === 'https://example.com/b')).toBe(false);
  });

  it('rotates the secret: both sign for 24 h, then only the new one', async () => {
    const ep = await createEndpoint(ctx, { url: r.url, events: ['subscription.created'] });
    const res = await ctx.request('POST', `/webhook-endpoints/${ep.id}/rotate-secret`);
    expect(res.status).toBe(200);
    const rotated = await res.json();
    expect(rotated.id).toBe(ep.id);
    expect(rotated.secret).toMatch(/^whsec_/);
    expect(rotated.secret).not.toBe(ep.secret);
    r.verifyWith = [ep.secret, rotated.secret];
    await ctx.startWorker();
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 63, connectionId: 630, subscriptions: [{ id: 6300 }] }));
    const [first] = await r.waitFor(1);
    expect(first.verified).toEqual([true, true]);
    expect(String(first.headers['webhook-signature']).split(' ')).toHaveLength(2);

    // 24 h later: the old secret no longer signs.
    await ctx.deps.db.execute(sql`update webhook_endpoints set previous_secret_expires_at = now() - interval '1 second' where id = ${ep.id}`);
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 63, connectionId: 630, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: 6300 }, { id: 6301 }] }));
    const second = (await r.waitFor(2))[1];
    expect(second.verified).toEqual([false, true]);
    expect(() => new Webhook(rotated.secret).verify(second.body, second.headers as Record<string, string>)).not.toThrow();
    expect((await ctx.request('POST', '/webhook-endpoints/ep_unknown/rotate-secret')).status).toBe(404);
  });

  it('a second rotation within 24 h keeps every secret replaced less than 24 h ago', async () => {
    const r2 = await startReceiver();
    try {
      const ep = await createEndpoint(ctx, { url: r2.url, events: ['subscription.created'] });
      const s1 = (await (await ctx.request('POST', `/webhook-endpoints/${ep.id}/rotate-secret`)).json()).secret;
      const s2 = (await (await ctx.request('POST', `/webhook-endpoints/${ep.id}/rotate-secret`)).json()).secret;
      r2.verifyWith = [ep.secret, s1, s2];
      await ctx.startWorker();
      await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 64, connectionId: 640, subscriptions: [{ id: 6400 }] }));
      const [first] = await r2.waitFor(1);
      expect(first.verified).toEqual([true, true, true]);
      expect(String(first.headers['webhook-signature']).split(' ')).toHaveLength(3);

      // The first secret's 24 h are over (it was replaced first): it alone stops signing.
      await ctx.deps.db.execute(sql`
        update webhook_endpoints set older_secrets = jsonb_set(older_secrets, '{0,expiresAt}', to_jsonb((now() - interval '1 second')::text))
        where id = ${ep.id}`);
      await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 64, connectionId: 640, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: 6400 }, { id: 6401 }] }));
      const second = (await r2.waitFor(2))[1];
      expect(second.verified).toEqual([false, true, true]);
    } finally {
      await r2.close();
    }
  });

  it('documents every route in OpenAPI', async () => {
    const doc = await (await ctx.app.request('/openapi.json')).json();
    for (const p of ['/webhook-endpoints', '/webhook-endpoints/{id}', '/webhook-endpoints/{id}/rotate-secret', '/webhook-endpoints/{id}/deliveries', '/webhook-endpoints/{id}/replay', '/webhook-endpoints/{id}/enable', '/users/{u}/email-delivery']) {
      expect(doc.paths[p], p).toBeDefined();
    }
  });
});

async function waitForAttempt(c: TestContext, endpointId: string) {
  for (let i = 0; i < 200; i++) {
    const [row] = await c.deps.db.execute<{ error: string | null; status_code: number | null }>(sql`select error, status_code from delivery_attempts where endpoint_id = ${endpointId}`);
    if (row) return row;
    await new Promise((resolve) => setTimeout(resolve, 50));
  }
  throw new Error('no delivery attempt');
}
