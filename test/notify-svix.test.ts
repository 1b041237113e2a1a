import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/jobs/enqueue.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint, makeDueNow } from './helpers/notify.js';
import { waitUntil } from './helpers/receiver.js';
import { startFakeSvix, type FakeSvix } from './helpers/svix-server.js';
import { syncedPayload } from './helpers/webhooks.js';

// Svix API mode: with SVIX_API_KEY set, endpoints are mirrored to one
// Svix application and each event is published once (eventId and idempotency key = our id).
let ctx: TestContext;
let svix: FakeSvix;
beforeAll(async () => {
  svix = await startFakeSvix();
  ctx = await createTestContext({ SVIX_API_KEY: svix.token, SVIX_SERVER_URL: svix.url });
  await ctx.startWorker();
});
afterAll(async () => {
  await ctx.close();
  await svix.close();
});

describe('Svix API mode', () => {
  let ep: Awaited<ReturnType<typeof createEndpoint>>;
  let svixId: string;

  it('mirrors a new endpoint into the docrelay application, same uid, secret and filter', async () => {
    ep = await createEndpoint(ctx, { url: 'https://example.com/hook', events: ['document.created', 'subscription.created'], description: 'acct' });
    const app = [...svix.apps.values()].find((a) => a.uid === 'docrelay');
    expect(app).toBeDefined();
    const mirrored = [...svix.endpoints.values()].find((e) => e.uid === ep.id)!;
    expect(mirrored).toMatchObject({ url: 'https://example.com/hook', secret: ep.secret, filterTypes: ['document.created', 'subscription.created'], description: 'acct' });
    svixId = mirrored.id;
    const [row] = await ctx.deps.db.execute<{ svix_endpoint_id: string }>(sql`select svix_endpoint_id from webhook_endpoints where id = ${ep.id}`);
    expect(row.svix_endpoint_id).toBe(svixId);
  });

  it('publishes each event once through message.create, with our event id as eventId and idempotency key', async () => {
    svix.failMessages = 3; // Svix down for the first try (its client retries twice itself): our job retries.
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 91, connectionId: 910, subscriptions: [{ id: 9100, documents: [{ id: 91000 }] }] }));
    await waitUntil(async () => {
      await makeDueNow(ctx, 'publish_event');
      return svix.messages.length >= 2;
    }, 30_000, 'two messages in Svix');
    const events = await ctx.deps.db.execute<{ id: string; type: string }>(sql`select id, type from events order by created_at`);
    expect(svix.messages.map((m) => m.eventId).sort()).toEqual(events.map((e) => e.id).sort());
    for (const m of svix.messages) {
      const e = events.find((x) => x.id === m.eventId)!;
      expect(m.eventType).toBe(e.type);
      expect(m.payload).toMatchObject({ type: e.type, data: expect.any(Object) });
      expect(Date.parse(m.payload.timestamp)).not.toBeNaN();
    }
    const creates = svix.calls.filter((c) => c.path.endsWith('/msg') && c.method === 'POST');
    for (const c of creates) expect(c.headers['idempotency-key']).toBe(c.body.eventId);
    // Delivery is Svix's job here: no direct messages of ours.
    const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from messages`);
    expect(n).toBe(0);

    // Publishing an event again (a re-run job) makes no second Svix message.
    await enqueue(ctx.deps.db, 'publish_event', { eventId: events[0].id });
    await waitUntil(async () => {
      const [{ n: left }] = await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from graphile_worker.jobs where task_identifier = 'publish_event'`);
      return left === 0;
    }, 10_000, 'publish job done');
    expect(svix.messages).toHaveLength(2);
  });

  it('mirrors secret rotation and deletion', async () => {
    const rotated = await (await ctx.request('POST', `/webhook-endpoints/${ep.id}/rotate-secret`)).json();
    expect(svix.endpoints.get(svixId).secret).toBe(rotated.secret);
    expect((await ctx.request('DELETE', `/webhook-endpoints/${ep.id}`)).status).toBe(204);
    expect(svix.endpoints.has(svixId)).toBe(false);
  });
});
