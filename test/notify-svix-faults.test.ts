import { sql } from 'drizzle-orm';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint, makeDueNow } from './helpers/notify.js';
import { waitUntil } from './helpers/receiver.js';
import { startFakeSvix, type FakeSvix } from './helpers/svix-server.js';
import { syncedPayload } from './helpers/webhooks.js';

// Svix API mode, two-sided changes ordered so that a failure on either side leaves nothing
// orphaned; and the delivery log, replay and disabled state read from Svix.
let ctx: TestContext;
let svix: FakeSvix;
beforeAll(async () => {
  svix = await startFakeSvix();
  ctx = await createTestContext({ SVIX_API_KEY: svix.token, SVIX_SERVER_URL: svix.url });
});
afterEach(async () => {
  svix.fault = () => null;
  await ctx.deps.db.execute(sql`drop trigger if exists test_fault on webhook_endpoints`);
  await ctx.deps.db.execute(sql`alter table webhook_endpoints drop constraint if exists test_fault`);
});
afterAll(async () => {
  await ctx.close();
  await svix.close();
});

const ours = async () => (await ctx.deps.db.execute<{ id: string; secret: string; svix_endpoint_id: string }>(sql`select id, secret, svix_endpoint_id from webhook_endpoints`));
const mirrored = (uid: string) => [...svix.endpoints.values()].find((e) => e.uid === uid);
/** Make our own writes to webhook_endpoints fail, as a database error would. */
const failOurUpdates = () =>
  ctx.deps.db.execute(sql.raw(`
    create or replace function test_fault() returns trigger language plpgsql as $$ begin raise exception 'injected fault'; end $$;
    create trigger test_fault before update on webhook_endpoints for each row execute function test_fault();`));

describe('Svix API mode: nothing orphaned', () => {
  it('a failed insert takes back the endpoint just made in Svix; a Svix failure inserts nothing', async () => {
    const before = svix.endpoints.size;
    await ctx.deps.db.execute(sql`alter table webhook_endpoints add constraint test_fault check (false) not valid`);
    const res = await ctx.request('POST', '/webhook-endpoints', { body: { url: 'https://example.com/a' } });
    expect(res.status).toBe(500);
    expect(svix.endpoints.size).toBe(before);
    await ctx.deps.db.execute(sql`alter table webhook_endpoints drop constraint test_fault`);

    svix.fault = (c) => (c.method === 'POST' && c.path.endsWith('/endpoint') ? 500 : null);
    const refused = await ctx.request('POST', '/webhook-endpoints', { body: { url: 'https://example.com/b' } });
    expect(refused.status).toBe(502);
    expect((await refused.json()).error.code).toBe('svix_unavailable');
    expect(await ours()).toHaveLength(0);
    expect(svix.endpoints.size).toBe(before);
  });

  it('DELETE removes the Svix endpoint first: a Svix failure leaves both, and a retry removes both', async () => {
    const ep = await createEndpoint(ctx, { url: 'https://example.com/c' });
    svix.fault = (c) => (c.method === 'DELETE' ? 500 : null);
    const res = await ctx.request('DELETE', `/webhook-endpoints/${ep.id}`);
    expect(res.status).toBe(502);
    expect((await ours()).map((e) => e.id)).toContain(ep.id);
    expect(mirrored(ep.id)).toBeDefined();
    svix.fault = () => null;
    expect((await ctx.request('DELETE', `/webhook-endpoints/${ep.id}`)).status).toBe(204);
    expect((await ours()).map((e) => e.id)).not.toContain(ep.id);
    expect(mirrored(ep.id)).toBeUndefined();
  });

  it('rotation: Svix rotates only after our commit, and our row goes back when Svix refuses', async () => {
    const ep = await createEndpoint(ctx, { url: 'https://example.com/d' });
    // Our commit fails: Svix was never asked, it still signs with the secret the customer has.
    await failOurUpdates();
    expect((await ctx.request('POST', `/webhook-endpoints/${ep.id}/rotate-secret`)).status).toBe(500);
    expect(mirrored(ep.id).secret).toBe(ep.secret);
    await ctx.deps.db.execute(sql`drop trigger test_fault on webhook_endpoints`);

    // Svix refuses: nothing changed on either side.
    svix.fault = (c) => (c.path.endsWith('/secret/rotate') ? 500 : null);
    const res = await ctx.request('POST', `/webhook-endpoints/${ep.id}/rotate-secret`);
    expect(res.status).toBe(502);
    expect(mirrored(ep.id).secret).toBe(ep.secret);
    expect((await ours()).find((e) => e.id === ep.id)!.secret).toBe(ep.secret);

    svix.fault = () => null;
    const rotated = await (await ctx.request('POST', `/webhook-endpoints/${ep.id}/rotate-secret`)).json();
    expect(mirrored(ep.id).secret).toBe(rotated.secret);
    expect((await ours()).find((e) => e.id === ep.id)!.secret).toBe(rotated.secret);
  });
});

describe('Svix API mode: read from Svix', () => {
  it('shows an endpoint Svix disabled, its attempts from Svix, and replays through recover', async () => {
    const ep = await createEndpoint(ctx, { url: 'https://example.com/e', events: ['subscription.created'] });
    const svixId = mirrored(ep.id).id;
    await ctx.startWorker();
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 92, connectionId: 920, subscriptions: [{ id: 9200 }] }));
    const msg = await waitUntil(async () => {
      await makeDueNow(ctx, 'publish_event');
      return svix.messages.find((m) => m.eventType === 'subscription.created' && m.payload.data.subscription.id === 9200);
    }, 20_000, 'the message in Svix');
    // Svix tried it twice and failed, then disabled the endpoint.
    svix.attempt(svixId, msg, 500);
    svix.attempt(svixId, msg, 503);
    svix.endpoints.get(svixId).disabled = true;

    const listed = (await (await ctx.request('GET', '/webhook-endpoints')).json()).endpoints.find((e: any) => e.id === ep.id);
    expect(listed).toMatchObject({ disabled: true, disabled_reason: 'disabled_by_svix' });
    const log = await (await ctx.request('GET', `/webhook-endpoints/${ep.id}/deliveries`)).json();
    expect(log.deliveries.map((d: any) => [d.message_id, d.event_type, d.attempt, d.status_code, d.error])).toEqual([
      [msg.id, 'subscription.created', 2, 503, 'HTTP 503'],
      [msg.id, 'subscription.created', 1, 500, 'HTTP 500'],
    ]);

    const res = await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay?since=2020-01-01`);
    expect(res.status).toBe(202);
    expect(await res.json()).toEqual({ replayed: 1 });
    expect(svix.calls.some((c) => c.method === 'POST' && c.path.endsWith(`/endpoint/${svixId}/recover`) && c.body.since.startsWith('2020-01-01'))).toBe(true);
    expect(svix.endpoints.get(svixId).disabled).toBe(false);
    const after = await (await ctx.request('GET', `/webhook-endpoints/${ep.id}/deliveries`)).json();
    expect(after.deliveries[0]).toMatchObject({ message_id: msg.id, attempt: 3, status_code: 200, error: null });
    expect((await (await ctx.request('GET', '/webhook-endpoints')).json()).endpoints.find((e: any) => e.id === ep.id).disabled).toBe(false);
  });
});
