import { sql } from 'drizzle-orm';
import { afterEach, describe, expect, it } from 'vitest';
import { newEndpointSecret } from '../src/notify/signing.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { rescheduleNow, waitForIdleQueue } from './helpers/jobs.js';
import { createEndpoint, makeDueNow } from './helpers/notify.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { startSmtp, type SmtpSink } from './helpers/smtp.js';
import { syncedPayload } from './helpers/webhooks.js';

// Operational events: an endpoint that keeps failing is announced to the operator once a
// day (endpoint.failing), then when the 5-day rule disables it (endpoint.disabled), at
// OPS_WEBHOOK_URL (svix-signed) and OPS_EMAIL; with neither set, nothing.
let ctx: TestContext;
let customer: Receiver;
let ops: Receiver | undefined;
let smtp: SmtpSink;
afterEach(async () => {
  customer.release();
  await ctx.close();
  await customer.close();
  await ops?.close();
  await smtp.close();
});

const sync = async (subs: number[], lastUpdate: string) =>
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 90, connectionId: 900, lastUpdate, subscriptions: subs.map((id) => ({ id })) }))).status).toBe(200);
const deliveryTasks = ['deliver_message', 'deliver_messages'];
const opsTasks = ['send_ops_webhook', 'send_ops_email'];
/** Every failed attempt due now is made, and whatever it queued for the operator has run. */
const retryNow = async () => {
  await makeDueNow(ctx);
  await waitForIdleQueue(ctx.deps.db, [...deliveryTasks, ...opsTasks]);
};
const failingFor = (endpointId: string, interval: string) =>
  ctx.deps.db.execute(sql`update webhook_endpoints set failing_since = now() - ${interval}::interval where id = ${endpointId}`);
const bodies = () => ops!.received.map((r) => JSON.parse(r.body));

describe('operational events', () => {
  it('warns once while an endpoint keeps failing, then when it is disabled: signed webhook and mail', async () => {
    customer = await startReceiver(() => ({ status: 500 }));
    ops = await startReceiver(() => ({ status: 200 }));
    smtp = await startSmtp();
    const opsSecret = newEndpointSecret();
    ops.verifyWith = [opsSecret];
    ctx = await createTestContext({
      FETCH_ALLOW_PRIVATE_NETWORKS: '1',
      OPS_WEBHOOK_URL: ops.url,
      OPS_WEBHOOK_SECRET: opsSecret,
      SMTP_URL: smtp.url,
      OPS_EMAIL: 'ops@example.test',
    });
    const ep = await createEndpoint(ctx, { url: `${customer.url}?token=receiver-token`, description: 'Acme accounting' });
    // Two workers: the once-a-day rule must hold whichever worker records the failure.
    await ctx.startWorker();
    await ctx.startWorker();

    await sync([9000], '2026-11-20T08:00:00Z');
    await customer.waitFor(1);
    await waitForIdleQueue(ctx.deps.db, [...deliveryTasks, ...opsTasks]);
    await retryNow(); // attempt 2, 5 s later: failing for seconds, not an hour
    expect(customer.received).toHaveLength(2);
    expect(ops.received).toHaveLength(0);

    // An hour without a success: the next failed attempt warns. The operator's receiver
    // fails once; graphile-worker tries again, with the same webhook-id.
    ops.respond = (_r, n) => ({ status: n === 1 ? 503 : 200 });
    await failingFor(ep.id, '61 minutes');
    await makeDueNow(ctx);
    await ops.waitFor(1);
    await waitUntil(async () => (await rescheduleNow(ctx.deps.db, sql`task_identifier = 'send_ops_webhook'`), ops!.received.length >= 2), 20_000, 'the ops webhook retried');
    await waitForIdleQueue(ctx.deps.db, [...deliveryTasks, ...opsTasks]);
    expect(ops.received.map((r) => r.verified)).toEqual([[true], [true]]);
    expect(ops.received[1].headers['webhook-id']).toBe(ops.received[0].headers['webhook-id']);
    const [failing] = bodies();
    expect(failing).toMatchObject({
      type: 'endpoint.failing',
      data: {
        endpoint: { id: ep.id, url: customer.url, description: 'Acme accounting' },
        consecutive_failures: 3,
        last_success_at: null,
        success_rate: 0,
        disabled_reason: null,
      },
    });
    expect(Date.parse(failing.data.disabled_at_the_latest) - Date.parse(failing.data.failing_since)).toBe(5 * 86400_000);
    await waitUntil(async () => smtp.mails.length === 1, 10_000, 'the failing mail');
    expect(smtp.mails[0].to).toMatchObject({ text: 'ops@example.test' });
    expect(smtp.mails[0].subject).toBe(`docrelay: webhook endpoint ${ep.id} (Acme accounting) is failing`);
    expect(smtp.mails[0].text).toContain('Consecutive failures: 3');

    // More failures the same day (a new message, and retries): no second warning.
    await sync([9000, 9001], '2026-11-21T08:00:00Z');
    await waitForIdleQueue(ctx.deps.db, [...deliveryTasks, ...opsTasks]);
    await retryNow();
    await retryNow();
    expect(customer.received.length).toBeGreaterThanOrEqual(6);
    expect(bodies().map((b) => b.type)).toEqual(['endpoint.failing', 'endpoint.failing']);
    expect(smtp.mails).toHaveLength(1);

    // Five days without a success: the next failed attempt disables it, and says so once.
    await failingFor(ep.id, '5 days 1 minute');
    await retryNow();
    const disabled = await waitUntil(async () => bodies().find((b) => b.type === 'endpoint.disabled'), 10_000, 'endpoint.disabled');
    expect(disabled.data).toMatchObject({ endpoint: { id: ep.id }, disabled_reason: 'failing_for_5_days' });
    expect(disabled.data.consecutive_failures).toBeGreaterThanOrEqual(6);
    await waitUntil(async () => smtp.mails.length === 2, 10_000, 'the disabled mail');
    expect(smtp.mails[1].subject).toBe(`docrelay: webhook endpoint ${ep.id} (Acme accounting) was disabled (failing_for_5_days)`);
    await retryNow();
    expect(bodies().map((b) => b.type)).toEqual(['endpoint.failing', 'endpoint.failing', 'endpoint.disabled']);
    expect(ops.received.at(-1)!.verified).toEqual([true]);
    // Neither the endpoint's secret nor its URL's token travels.
    for (const text of [...ops.received.map((r) => r.body), ...smtp.mails.map((m) => m.text ?? '')]) {
      expect(text).not.toContain(ep.secret);
      expect(text).not.toContain('receiver-token');
    }
  });

  it('records and sends nothing when OPS_WEBHOOK_URL and OPS_EMAIL are unset', async () => {
    customer = await startReceiver(() => ({ status: 500 }));
    smtp = await startSmtp();
    ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', SMTP_URL: smtp.url });
    const ep = await createEndpoint(ctx, { url: customer.url });
    await ctx.startWorker();
    await sync([9100], '2026-11-20T08:00:00Z');
    await customer.waitFor(1);
    await failingFor(ep.id, '2 hours');
    await retryNow();
    await failingFor(ep.id, '6 days');
    await retryNow();
    expect((await (await ctx.request('GET', '/webhook-endpoints')).json()).endpoints[0]).toMatchObject({ disabled: true, disabled_reason: 'failing_for_5_days' });
    expect(await ctx.deps.db.execute(sql`select * from ops_events`)).toHaveLength(0);
    expect(await ctx.deps.db.execute(sql`select * from graphile_worker.jobs where task_identifier like 'send_ops_%'`)).toHaveLength(0);
    expect(smtp.mails).toHaveLength(0);
  });
});
