import type { LookupAddress } from 'node:dns';
import { afterEach, describe, expect, it } from 'vitest';
import { BLOCKED_ADDRESS, type Resolver } from '../src/net/address.js';
import { createWebhookClient, type WebhookClient } from '../src/notify/http.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';

// The client that posts customer webhooks: built per service (no module singleton), closed
// on shutdown, and held to the one SSRF rule of net/address.ts.
const open: { clients: WebhookClient[]; receivers: Receiver[] } = { clients: [], receivers: [] };
afterEach(async () => {
  for (const c of open.clients.splice(0)) c.close();
  await Promise.all(open.receivers.splice(0).map((r) => r.close()));
});
const client = (...args: Parameters<typeof createWebhookClient>) => {
  const c = createWebhookClient(...args);
  open.clients.push(c);
  return c;
};
const receiver = async (...args: Parameters<typeof startReceiver>) => {
  const r = await startReceiver(...args);
  open.receivers.push(r);
  return r;
};

/** A resolver answering every name with these addresses, as a DNS server could. */
const answering = (...addresses: string[]): Resolver => (_host, _opts, cb) =>
  cb(null, addresses.map((address): LookupAddress => ({ address, family: address.includes(':') ? 6 : 4 })));

describe('webhook client', () => {
  it('refuses a name when any address it resolves to is private, as downloads do (it used to drop those and connect to the rest)', async () => {
    const r = await receiver();
    // 127.0.0.1 stands in for a public address (tests reach only loopback); 10.0.0.5 is the private one.
    const c = client({ allowPrivate: false, allowed: (ip) => ip === '127.0.0.1', resolve: answering('127.0.0.1', '10.0.0.5') });
    const url = r.url.replace('127.0.0.1', 'receiver.test');
    const res = await c.post(url, '{}', {}, { timeoutMs: 5_000 });
    expect(res.status).toBeNull();
    expect(res.error).toContain(BLOCKED_ADDRESS);
    expect(res.error).toMatch(/receiver\.test resolves to 10\.0\.0\.5, a private or reserved address/);
    expect(r.received).toHaveLength(0);

    // The same name resolving to allowed addresses only is delivered.
    const ok = client({ allowPrivate: false, allowed: (ip) => ip === '127.0.0.1', resolve: answering('127.0.0.1') });
    expect((await ok.post(url, '{}', {}, { timeoutMs: 5_000 })).status).toBe(200);
    expect(r.received).toHaveLength(1);
  });

  it('refuses private literal addresses without a connection unless private networks are allowed', async () => {
    const r = await receiver();
    const strict = client({ allowPrivate: false });
    const res = await strict.post(r.url, '{}', {}, { timeoutMs: 5_000 });
    expect(res.error).toMatch(/127\.0\.0\.1 is a private or reserved address/);
    expect(r.received).toHaveLength(0);
    expect((await client({ allowPrivate: true }).post(r.url, '{}', {}, { timeoutMs: 5_000 })).status).toBe(200);
  });

  it('keeps connections warm between posts, and close() ends them', async () => {
    const r = await receiver();
    const c = createWebhookClient({ allowPrivate: true });
    for (let i = 0; i < 3; i++) expect((await c.post(r.url, '{}', {}, { timeoutMs: 5_000 })).status).toBe(200);
    expect(r.connections()).toBe(1);
    c.close();
    await waitUntil(async () => r.connections() === 0, 5_000, 'the pooled connection closed');
  });
});
