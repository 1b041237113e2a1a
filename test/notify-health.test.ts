import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint, makeDueNow, pendingJobs } from './helpers/notify.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

// Endpoint health in GET /webhook-endpoints, and POST /webhook-endpoints/{id}/enable.
let ctx: TestContext;
let r: Receiver;
let answer: () => { status: number };
beforeEach(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  answer = () => ({ status: 200 });
  r = await startReceiver(() => answer());
});
afterEach(async () => {
  r.release();
  await ctx.close();
  await r.close();
});

const sync = async (userId: number, subs: number[], lastUpdate?: string) =>
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId, connectionId: userId * 10, lastUpdate, subscriptions: subs.map((id) => ({ id })) }))).status).toBe(200);
const statuses = (endpointId: string) =>
  ctx.deps.db.execute<{ status: string; attempts: number }>(sql`select status, attempts from messages where endpoint_id = ${endpointId} order by created_at, id`);
const listed = async (id: string) => (await (await ctx.request('GET', '/webhook-endpoints')).json()).endpoints.find((e: any) => e.id === id);

describe('endpoint health', () => {
  it('shows success rate, last success, consecutive failures and why it is disabled', async () => {
    const ep = await createEndpoint(ctx, { url: r.url });
    expect((await listed(ep.id)).health).toEqual({ success_rate: null, last_success_at: null, consecutive_failures: 0, disabled_reason: null });
    await ctx.startWorker();
    await sync(80, [8000]);
    await waitUntil(async () => (await statuses(ep.id))[0]?.status === 'succeeded', 10_000, 'first delivered');
    const succeededAt = Date.now();

    answer = () => ({ status: 500 });
    await sync(80, [8000, 8001], '2026-11-21T08:00:00Z');
    await waitUntil(async () => (await pendingJobs(ctx)).some((j) => j.payload.attempt === 2 && j.locked_at === null), 10_000, 'retry queued');
    await makeDueNow(ctx);
    await waitUntil(async () => (await pendingJobs(ctx)).some((j) => j.payload.attempt === 3), 10_000, 'second retry queued');

    const { health } = await listed(ep.id);
    expect(health.success_rate).toBeCloseTo(1 / 3, 3);
    expect(health.consecutive_failures).toBe(2);
    expect(Date.parse(health.last_success_at)).toBeLessThanOrEqual(succeededAt);
    expect(health.disabled_reason).toBeNull();

    answer = () => ({ status: 410 });
    await makeDueNow(ctx);
    const gone = await waitUntil(async () => {
      const e = await listed(ep.id);
      return e.disabled ? e : null;
    }, 10_000, 'disabled');
    expect(gone.health).toMatchObject({ consecutive_failures: 3, disabled_reason: 'gone', success_rate: 0.25 });
  });
});

describe('POST /webhook-endpoints/{id}/enable', () => {
  it('enables a disabled endpoint; with replay_since it sends what it missed since then, once', async () => {
    answer = () => ({ status: 410 });
    const ep = await createEndpoint(ctx, { url: r.url });
    await ctx.startWorker();
    await sync(81, [8100]);
    await waitUntil(async () => (await listed(ep.id)).disabled, 10_000, 'disabled');
    await sync(81, [8100, 8101, 8102], '2026-11-21T08:00:00Z');
    expect(await statuses(ep.id)).toHaveLength(3);
    expect(r.received).toHaveLength(1);

    answer = () => ({ status: 200 });
    const plain = await ctx.request('POST', `/webhook-endpoints/${ep.id}/enable`);
    expect(plain.status).toBe(200);
    expect(await plain.json()).toMatchObject({ id: ep.id, disabled: false, disabled_reason: null, replayed: 0, health: { disabled_reason: null } });
    expect(r.received).toHaveLength(1);

    const since = new Date(Date.now() - 3600_000).toISOString().slice(0, 16) + 'Z'; // 2026-11-20T08:00Z form
    const res = await ctx.request('POST', `/webhook-endpoints/${ep.id}/enable?replay_since=${encodeURIComponent(since)}`);
    expect(res.status).toBe(200);
    expect((await res.json()).replayed).toBe(3);
    await waitUntil(async () => (await statuses(ep.id)).every((m) => m.status === 'succeeded'), 10_000, 'all delivered');
    expect(r.received).toHaveLength(4);
    expect((await statuses(ep.id)).map((m) => m.attempts)).toEqual([2, 1, 1]);

    expect((await ctx.request('POST', '/webhook-endpoints/ep_unknown/enable')).status).toBe(404);
    const bad = await ctx.request('POST', `/webhook-endpoints/${ep.id}/enable?replay_since=last-week`);
    expect(bad.status).toBe(400);
    expect(JSON.stringify(await bad.json())).toMatch(/replay_since/);
  });
});
