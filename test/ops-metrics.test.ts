import type { AddressInfo } from 'node:net';
import type { ServerType } from '@hono/node-server';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { serveMetrics } from '../src/ops/metrics-routes.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint } from './helpers/notify.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { startSmtp, type SmtpSink } from './helpers/smtp.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * README "Operating it", `GET /metrics`: a known sequence of webhooks, files, deliveries and mails
 * through the real app and worker, then a scrape whose counters must tell exactly that
 * sequence (and agree with the database's own record of it).
 */

/** The value of one series in Prometheus text format (undefined when absent). */
function sample(text: string, name: string, labels: Record<string, string> = {}): number | undefined {
  for (const line of text.split('\n')) {
    if (line.startsWith('#')) continue;
    const m = /^([a-zA-Z_:][\w:]*)(?:\{(.*)\})? (\S+)$/.exec(line);
    if (!m || m[1] !== name) continue;
    const have = Object.fromEntries([...(m[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)].map((l) => [l[1], l[2]]));
    if (Object.keys(labels).length === Object.keys(have).length && Object.entries(labels).every(([k, v]) => have[k] === v)) return Number(m[3]);
  }
  return undefined;
}

let ctx: TestContext;
let provider: ProviderSite;
let good: Receiver;
let bad: Receiver;
let smtp: SmtpSink;
let goodId: string;
let badId: string;
const later = (minutes: number) => new Date(Date.parse('2026-11-21T08:00:00Z') + minutes * 60_000).toISOString();

beforeAll(async () => {
  provider = await startProviderSite();
  provider.route('/bill.pdf', send(await makePdf(['Bill 111']), 'application/pdf'));
  good = await startReceiver(() => ({ status: 200 }));
  bad = await startReceiver(() => ({ status: 500 }));
  smtp = await startSmtp();
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', SMTP_URL: smtp.url });
  goodId = (await createEndpoint(ctx, { url: good.url })).id;
  badId = (await createEndpoint(ctx, { url: bad.url })).id;
  expect((await ctx.request('POST', '/users/7/token')).status).toBe(201); // creates user 7
  expect((await ctx.request('PUT', '/users/7/email-delivery', { body: { to: 'ann@example.com' } })).status).toBe(200);
  expect((await ctx.request('POST', '/config', { body: { 'captcha.enabled': '1' } })).status).toBe(200);
  await ctx.startWorker();
});
afterAll(async () => {
  await ctx?.close();
  await Promise.all([provider?.close(), good?.close(), bad?.close(), smtp?.close()]);
});

async function scrape(token?: string | null): Promise<string> {
  const res = await ctx.request('GET', '/metrics', { token });
  expect(res.status).toBe(200);
  expect(res.headers.get('content-type')).toContain('text/plain');
  return res.text();
}

describe('GET /metrics after a known sequence', () => {
  it('counts webhooks, sync changes, files, deliveries and mails as they happened', async () => {
    const first = syncedPayload({
      idWebhookData: 1,
      lastUpdate: later(1),
      subscriptions: [
        { id: 11, documents: [{ id: 111, url: provider.url('/bill.pdf') }, { id: 112, url: provider.url('/missing.pdf') }] },
        { id: 12 },
      ],
    });
    expect((await ctx.sendWebhook('CONNECTION_SYNCED', first)).status).toBe(200);
    expect((await (await ctx.sendWebhook('CONNECTION_SYNCED', first)).json()).status).toBe('duplicate');
    expect((await ctx.sendWebhook('CONNECTION_SYNCED', first, { secret: 'wrong' })).status).toBe(401);
    expect((await ctx.sendWebhook('NOT_AN_EVENT', first)).status).toBe(404);
    // Subscription 12 is no longer listed: archived.
    const second = syncedPayload({ idWebhookData: 2, lastUpdate: later(2), subscriptions: [{ id: 11, documents: [{ id: 111, url: provider.url('/bill.pdf') }, { id: 112, url: provider.url('/missing.pdf') }] }] });
    expect((await (await ctx.sendWebhook('CONNECTION_SYNCED', second)).json()).status).toBe('processed');
    // Another connection of the user hits a captcha.
    const captcha = syncedPayload({ idWebhookData: 3, connectionId: 32, state: 'websiteUnavailable', captchaRequired: true, lastUpdate: later(3), subscriptions: [] });
    expect((await ctx.sendWebhook('CONNECTION_SYNCED', captcha)).status).toBe(200);

    // Both documents mailed (once their files settled), and every first attempt made.
    await waitUntil(async () => smtp.mails.length >= 2 || undefined, 30_000, 'two mails');
    const attempts = async (endpointId: string) =>
      (await ctx.deps.db.execute<{ ok: number; failed: number }>(sql`
        select count(*) filter (where status_code between 200 and 299)::int as ok,
               count(*) filter (where status_code is null or status_code not between 200 and 299)::int as failed
        from delivery_attempts where endpoint_id = ${endpointId}`))[0];
    // 3 subscription events (2 created, 1 deleted) and 2 document.created, to each endpoint.
    await waitUntil(async () => (await attempts(goodId)).ok === 5 && (await attempts(badId)).failed >= 5, 30_000, 'first deliveries');

    const text = await scrape();
    const inbound = (event: string, outcome: string) => sample(text, 'docrelay_inbound_webhooks_total', { event, outcome });
    expect(inbound('CONNECTION_SYNCED', 'processed')).toBe(3);
    expect(inbound('CONNECTION_SYNCED', 'duplicate')).toBe(1);
    expect(inbound('CONNECTION_SYNCED', 'invalid_signature')).toBe(1);
    expect(inbound('unknown', 'unknown_event')).toBe(1);
    expect(sample(text, 'docrelay_inbound_webhook_duration_seconds_count', { event: 'CONNECTION_SYNCED' })).toBe(5);

    expect(sample(text, 'docrelay_documents_total', { change: 'added' })).toBe(2);
    expect(sample(text, 'docrelay_subscriptions_total', { change: 'added' })).toBe(2);
    expect(sample(text, 'docrelay_subscriptions_total', { change: 'archived' })).toBe(1);
    expect(sample(text, 'docrelay_subscriptions_total', { change: 'restored' })).toBe(0);

    expect(sample(text, 'docrelay_file_jobs_total', { outcome: 'ready' })).toBe(1);
    expect(sample(text, 'docrelay_file_jobs_total', { outcome: 'failed' })).toBe(1);
    expect(sample(text, 'docrelay_file_job_duration_seconds_count', { outcome: 'ready' })).toBe(1);

    expect(sample(text, 'docrelay_mails_total', { outcome: 'sent' })).toBe(2);

    const db = { good: await attempts(goodId), bad: await attempts(badId) };
    expect(sample(text, 'docrelay_webhook_deliveries_total', { endpoint: goodId, outcome: 'succeeded' })).toBe(db.good.ok);
    expect(sample(text, 'docrelay_webhook_deliveries_total', { endpoint: goodId, outcome: 'failed' })).toBeUndefined();
    expect(sample(text, 'docrelay_webhook_deliveries_total', { endpoint: badId, outcome: 'failed' })).toBe(db.bad.failed);
    expect(sample(text, 'docrelay_webhook_delivery_duration_seconds_count', { endpoint: goodId })).toBe(db.good.ok);

    expect(sample(text, 'docrelay_connections', { captcha_status: 'retrying' })).toBe(1);
    expect(sample(text, 'docrelay_connections', { captcha_status: 'none' })).toBe(1);
    expect(sample(text, 'docrelay_connections', { captcha_status: 'gave_up' })).toBe(0);
    // The failing endpoint's retries wait in its queue; every task is reported.
    expect(sample(text, 'docrelay_jobs_queued', { task: 'deliver_message' })).toBeGreaterThanOrEqual(1);
    expect(sample(text, 'docrelay_jobs_queued', { task: 'fetch_document_files' })).toBe(0);
  });

  it('is admin only on the API: 401 without a token, 404 with a user token', async () => {
    expect((await ctx.request('GET', '/metrics', { token: null })).status).toBe(401);
    const token = (await (await ctx.request('POST', '/users/7/token')).json()).token as string;
    expect((await ctx.request('GET', '/metrics', { token })).status).toBe(404);
  });
});

describe('queue gauges and METRICS_PORT', () => {
  let idle: TestContext;
  let server: ServerType;
  let port: number;
  beforeAll(async () => {
    // No worker here: the jobs stay where they are put.
    idle = await createTestContext();
    await new Promise<void>((ready) => {
      server = serveMetrics(idle.deps, 0, '127.0.0.1', () => ready());
    });
    port = (server.address() as AddressInfo).port;
  });
  afterAll(async () => {
    await new Promise<void>((done) => server?.close(() => done()));
    await idle?.close();
  });

  it('serves /metrics without a token on its own port, and nothing else', async () => {
    const res = await fetch(`http://127.0.0.1:${port}/metrics`);
    expect(res.status).toBe(200);
    const text = await res.text();
    // A registry of its own: the other app's counters are not here.
    expect(text).not.toContain('docrelay_inbound_webhooks_total{');
    expect(sample(text, 'docrelay_jobs_queued', { task: 'announce_document' })).toBe(0);
    expect((await fetch(`http://127.0.0.1:${port}/`)).status).toBe(404);
    expect((await fetch(`http://127.0.0.1:${port}/jobs/failed`)).status).toBe(404);
  });

  it('reports queue depth, the age of the oldest due job and failed jobs per task', async () => {
    await idle.deps.db.execute(sql`select graphile_worker.add_job('captcha_resync', '{"connectionId": 1}'::json, run_at := now() - interval '90 seconds')`);
    await idle.deps.db.execute(sql`select graphile_worker.add_job('captcha_resync', '{"connectionId": 2}'::json, run_at := now() + interval '1 hour')`);
    const [f] = await idle.deps.db.execute<{ id: string }>(sql`select (graphile_worker.add_job('publish_event', '{"eventId": "x"}'::json)).id::text as id`);
    await idle.deps.db.execute(sql`select graphile_worker.permanently_fail_jobs(array[${f.id}::bigint], 'boom')`);
    const text = await (await fetch(`http://127.0.0.1:${port}/metrics`)).text();
    expect(sample(text, 'docrelay_jobs_queued', { task: 'captcha_resync' })).toBe(2);
    const age = sample(text, 'docrelay_jobs_oldest_due_age_seconds', { task: 'captcha_resync' })!;
    expect(age).toBeGreaterThanOrEqual(90);
    expect(age).toBeLessThan(3600);
    expect(sample(text, 'docrelay_jobs_queued', { task: 'publish_event' })).toBe(0);
    expect(sample(text, 'docrelay_jobs_failed', { task: 'publish_event' })).toBe(1);
    expect(sample(text, 'docrelay_jobs_oldest_due_age_seconds', { task: 'publish_event' })).toBe(0);
  });
});
