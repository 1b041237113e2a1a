import { gzipSync } from 'node:zlib';
import { sql } from 'drizzle-orm';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { waitForIdleQueue } from './helpers/jobs.js';
import { createEndpoint, makeDueNow, pendingJobs } from './helpers/notify.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';
import { recordEvents } from '../src/events/record.js';
import { signedFileUrl, verifyFileLink } from '../src/lib/file-links.js';

// Customer webhook delivery, end to end: inbound webhook → diff → events → messages → worker
// → a real HTTP receiver on 127.0.0.1 that checks every signature with svix's Webhook.verify.
let ctx: TestContext;
const receivers: Receiver[] = [];
const receiver = async (...args: Parameters<typeof startReceiver>) => {
  const r = await startReceiver(...args);
  receivers.push(r);
  return r;
};
beforeEach(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
});
afterEach(async () => {
  for (const r of receivers.splice(0)) r.release();
  await ctx.close();
  await Promise.all(receivers.map((r) => r.close()));
});

const messageRows = (endpointId: string) =>
  ctx.deps.db.execute<{ id: string; status: string; attempts: number; type: string }>(sql`
    select m.id, m.status, m.attempts, e.type from messages m join events e on e.id = m.event_id
    where m.endpoint_id = ${endpointId} order by m.created_at, m.id`);

async function sync(p: ReturnType<typeof syncedPayload>) {
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', p);
  expect(res.status).toBe(200);
}

describe('webhook delivery', () => {
  it('delivers subscription.created and, after its file settled, document.created — signed, verifiable, once', async () => {
    const r = await receiver();
    const ep = await createEndpoint(ctx, { url: r.url });
    r.verifyWith = [ep.secret];
    await ctx.startWorker();
    const payload = syncedPayload({ idWebhookData: 501, userId: 51, connectionId: 510, subscriptions: [{ id: 5100, label: 'Mobile', documents: [{ id: 51000, type: 'bill' }, { id: 51001, type: 'other' }] }] });
    await sync(payload);
    const got = await r.waitFor(2);
    for (const g of got) expect(g.verified).toEqual([true]);
    const bodies = got.map((g) => JSON.parse(g.body)).sort((a, b) => a.type.localeCompare(b.type));
    expect(bodies.map((b) => b.type)).toEqual(['document.created', 'subscription.created']);
    const [doc, sub] = bodies;
    expect(Date.parse(doc.timestamp)).not.toBeNaN();
    expect(doc.data).toMatchObject({ connection_id: 510, user_id: 51, document: { id: 51000, type: 'bill', file: { status: 'none' } }, subscription: { id: 5100, label: 'Mobile' } });
    expect(sub.data.subscription).toMatchObject({ id: 5100, id_connection: 510 });
    expect(got[0].headers['webhook-id']).toMatch(/^msg_[0-9a-f]{32}$/);

    // The same inbound webhook again (a Powens retry): no new event, no second message.
    await sync(payload);
    await waitForIdleQueue(ctx.deps.db);
    expect(r.received).toHaveLength(2);
    expect(await messageRows(ep.id)).toHaveLength(2);
    // The document of a type outside notify.document_types ('other') was never announced.
    const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from events where type = 'document.created'`);
    expect(n).toBe(1);
  });

  it('retries a failing receiver on the schedule with the same webhook-id until it answers 2xx, logging every attempt', async () => {
    const r = await receiver((_req, n) => (n <= 2 ? { status: 500, body: 'down for maintenance' } : { status: 204 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    r.verifyWith = [ep.secret];
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 52, connectionId: 520, subscriptions: [{ id: 5200 }] }));

    await r.waitFor(1);
    // The second attempt is due about 5 s later (±10 % jitter): we make it due now instead of waiting.
    const [retry1] = await waitUntil(async () => {
      const jobs = await pendingJobs(ctx);
      return jobs.length && jobs[0].payload.attempt === 2 ? jobs : null;
    });
    const delay1 = Date.parse(retry1.run_at) - Date.now();
    expect(delay1).toBeGreaterThan(3_500);
    expect(delay1).toBeLessThan(5_600);
    await makeDueNow(ctx);
    await r.waitFor(2);
    const [retry2] = await waitUntil(async () => {
      const jobs = await pendingJobs(ctx);
      return jobs.length && jobs[0].payload.attempt === 3 ? jobs : null;
    });
    const delay2 = Date.parse(retry2.run_at) - Date.now();
    expect(delay2).toBeGreaterThan(0.9 * 300_000 - 2_000);
    expect(delay2).toBeLessThan(1.1 * 300_000);
    await makeDueNow(ctx);
    await r.waitFor(3);

    const ids = new Set(r.received.map((g) => g.headers['webhook-id']));
    expect(ids.size).toBe(1);
    expect(new Set(r.received.map((g) => g.body)).size).toBe(1);
    for (const g of r.received) expect(g.verified).toEqual([true]);
    await waitUntil(async () => (await messageRows(ep.id))[0]?.status === 'succeeded', 5_000, 'message succeeded');

    const log = await (await ctx.request('GET', `/webhook-endpoints/${ep.id}/deliveries`)).json();
    expect(log.deliveries.map((d: any) => [d.attempt, d.status_code])).toEqual([[3, 204], [2, 500], [1, 500]]);
    expect(log.deliveries[2]).toMatchObject({ message_id: [...ids][0], event_type: 'subscription.created', error: 'HTTP 500', response: 'down for maintenance' });
    expect(log.deliveries[0].error).toBeNull();
    for (const d of log.deliveries) expect(d.duration_ms).toBeGreaterThanOrEqual(0);
    // Healthy again: the endpoint's failure run is over.
    const [row] = await ctx.deps.db.execute<{ failing_since: string | null }>(sql`select failing_since from webhook_endpoints where id = ${ep.id}`);
    expect(row.failing_since).toBeNull();
  });

  it('honours Retry-After on 429', async () => {
    const r = await receiver(() => ({ status: 429, headers: { 'retry-after': '120' } }));
    await createEndpoint(ctx, { url: r.url });
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 53, connectionId: 530, subscriptions: [{ id: 5300 }] }));
    const [job] = await waitUntil(async () => {
      const jobs = await pendingJobs(ctx);
      return jobs.length && jobs[0].payload.attempt === 2 ? jobs : null;
    });
    const delay = Date.parse(job.run_at) - Date.now();
    expect(delay).toBeGreaterThan(115_000);
    expect(delay).toBeLessThanOrEqual(120_000);
  });

  it('disables the endpoint on 410 Gone and sends it nothing more', async () => {
    const r = await receiver(() => ({ status: 410 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 54, connectionId: 540, subscriptions: [{ id: 5400 }] }));
    await r.waitFor(1);
    const list = await waitUntil(async () => {
      const l = await (await ctx.request('GET', '/webhook-endpoints')).json();
      return l.endpoints[0].disabled ? l : null;
    });
    expect(list.endpoints[0]).toMatchObject({ id: ep.id, disabled: true, disabled_reason: 'gone' });
    expect((await messageRows(ep.id))[0].status).toBe('failed');
    expect(await pendingJobs(ctx)).toHaveLength(0);
    await sync(syncedPayload({ userId: 54, connectionId: 540, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: 5400 }, { id: 5401 }] }));
    // The event is recorded for the disabled endpoint (for a replay), but not sent.
    expect((await messageRows(ep.id)).map((m) => [m.status, m.attempts])).toEqual([['failed', 1], ['failed', 0]]);
    expect(await pendingJobs(ctx)).toHaveLength(0);
    expect(await pendingJobs(ctx, 'deliver_messages')).toHaveLength(0);
    expect(r.received).toHaveLength(1);
  });

  it('replay delivers everything a disabled endpoint missed, once', async () => {
    let gone = true;
    const r = await receiver(() => ({ status: gone ? 410 : 200 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 65, connectionId: 650, subscriptions: [{ id: 6500 }] }));
    await waitUntil(async () => (await messageRows(ep.id))[0]?.status === 'failed', 10_000, 'disabled by 410');
    // Three events while it is disabled.
    await sync(syncedPayload({ userId: 65, connectionId: 650, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: 6500 }, { id: 6501 }, { id: 6502 }, { id: 6503 }] }));
    expect(await messageRows(ep.id)).toHaveLength(4);
    expect(r.received).toHaveLength(1);

    gone = false;
    expect(await (await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay`)).json()).toEqual({ replayed: 4 });
    // A second replay before the first is through sends nothing twice.
    expect(await (await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay`)).json()).toEqual({ replayed: 0 });
    await waitUntil(async () => (await messageRows(ep.id)).every((m) => m.status === 'succeeded'), 10_000, 'all delivered');
    const got = r.received.slice(1).map((g) => JSON.parse(g.body).data.subscription.id).sort();
    expect(got).toEqual([6500, 6501, 6502, 6503]);
    expect(r.received).toHaveLength(5);
  });

  it('signs the file links of a message afresh on each attempt, with the same webhook-id', async () => {
    const r = await receiver((_req, n) => ({ status: n === 1 ? 500 : 200 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    r.verifyWith = [ep.secret];
    // Announced two days ago: the links in the stored body expired long since.
    const twoDaysAgo = Date.now() - 2 * 86400_000;
    const stale = signedFileUrl(ctx.deps.links, 'file', 4242, twoDaysAgo);
    const staleThumb = signedFileUrl(ctx.deps.links, 'thumbnail', 4242, twoDaysAgo);
    const forged = `${ctx.deps.links.publicUrl}/files/77?exp=1&sig=AAAA`;
    await ctx.deps.db.transaction((tx) =>
      recordEvents(tx, [{
        type: 'document.created', dedupeKey: 'document.created:4242', userId: 42, connectionId: null,
        data: { document: { id: 4242, name: `see ${forged}`, url: stale, thumb_url: staleThumb }, user_id: 42 },
      }]),
    );
    await ctx.startWorker();
    await r.waitFor(1);
    await waitUntil(async () => (await pendingJobs(ctx)).some((j) => j.payload.attempt === 2), 5_000, 'the retry');
    await makeDueNow(ctx);
    await r.waitFor(2);
    expect(r.received[1].headers['webhook-id']).toBe(r.received[0].headers['webhook-id']);
    for (const got of r.received) {
      expect(got.verified).toEqual([true]);
      const doc = JSON.parse(got.body).data.document;
      for (const [variant, link] of [['file', doc.url], ['thumbnail', doc.thumb_url]] as const) {
        const u = new URL(link);
        expect(u.pathname).toBe(variant === 'file' ? '/files/4242' : '/files/4242/thumbnail');
        expect(verifyFileLink(ctx.config.linkSecret, variant, 4242, u.searchParams.get('exp')!, u.searchParams.get('sig')!)).toBe(true);
        expect(Number(u.searchParams.get('exp')) * 1000).toBeGreaterThan(got.at);
      }
      // A look-alike this service never signed is not turned into a valid link.
      expect(doc.name).toBe(`see ${forged}`);
    }
  });

  it('stops at the first 410 of a batch: the receiver gets none of the other messages', async () => {
    const r = await receiver(() => ({ status: 410 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    const subs = Array.from({ length: 20 }, (_, i) => ({ id: 5450 + i }));
    await sync(syncedPayload({ userId: 545, connectionId: 5450, subscriptions: subs }));
    expect(await pendingJobs(ctx, 'deliver_messages')).toHaveLength(1);
    await ctx.startWorker();
    await waitUntil(async () => {
      const rows = await messageRows(ep.id);
      return rows.length === 20 && rows.every((m) => m.status === 'failed');
    }, 10_000, 'every message failed');
    await waitUntil(async () => (await pendingJobs(ctx, 'deliver_messages')).length === 0, 5_000, 'the batch job done');
    expect(r.received).toHaveLength(1);
    const [row] = await ctx.deps.db.execute<{ disabled: boolean; disabled_reason: string }>(sql`select disabled, disabled_reason from webhook_endpoints where id = ${ep.id}`);
    expect(row).toEqual({ disabled: true, disabled_reason: 'gone' });
  });

  it('disables an endpoint that has been failing for 5 days', async () => {
    const r = await receiver(() => ({ status: 500 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    await ctx.deps.db.execute(sql`update webhook_endpoints set failing_since = now() - interval '5 days 1 minute' where id = ${ep.id}`);
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 55, connectionId: 550, subscriptions: [{ id: 5500 }] }));
    await r.waitFor(1);
    await waitUntil(async () => {
      const [row] = await ctx.deps.db.execute<{ disabled: boolean; disabled_reason: string }>(sql`select disabled, disabled_reason from webhook_endpoints where id = ${ep.id}`);
      return row.disabled && row.disabled_reason === 'failing_for_5_days';
    }, 5_000, 'endpoint disabled');
  });

  it('sends only the event types an endpoint asked for', async () => {
    const all = await receiver();
    const docsOnly = await receiver();
    await createEndpoint(ctx, { url: all.url });
    const ep = await createEndpoint(ctx, { url: docsOnly.url, events: ['document.created'] });
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 56, connectionId: 560, subscriptions: [{ id: 5600, documents: [{ id: 56000 }] }] }));
    await all.waitFor(2);
    await docsOnly.waitFor(1);
    await waitForIdleQueue(ctx.deps.db);
    expect(docsOnly.received.map((g) => JSON.parse(g.body).type)).toEqual(['document.created']);
    expect((await messageRows(ep.id)).map((m) => m.type)).toEqual(['document.created']);
  });

  it('keeps delivering to healthy endpoints while a slow one holds a single request at a time', async () => {
    const slow = await receiver(() => 'hang');
    const fast = await receiver();
    const s = await createEndpoint(ctx, { url: slow.url });
    await createEndpoint(ctx, { url: fast.url });
    // The slow endpoint has failed before (say a timeout): its messages queue in its own lane.
    await ctx.deps.db.execute(sql`update webhook_endpoints set failing_since = now() where id = ${s.id}`);
    await ctx.startWorker();
    const subs = Array.from({ length: 12 }, (_, i) => ({ id: 5700 + i }));
    await sync(syncedPayload({ userId: 57, connectionId: 570, subscriptions: subs }));
    await slow.waitFor(1);
    await fast.waitFor(12, 10_000);
    expect(slow.received).toHaveLength(1);
    expect(slow.maxInFlight).toBe(1);
  });

  it('moves an endpoint that starts failing to its own queue', async () => {
    const r = await receiver(() => ({ status: 502 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 58, connectionId: 580, subscriptions: [{ id: 5800 }] }));
    const [job] = await waitUntil(async () => {
      const jobs = await pendingJobs(ctx);
      return jobs.length && jobs[0].payload.attempt === 2 ? jobs : null;
    });
    expect(job.queue_name).toBe(`notify:${ep.id}`);
    // New messages of a failing endpoint go straight to that queue too.
    await sync(syncedPayload({ userId: 58, connectionId: 580, lastUpdate: '2026-11-21T08:00:00Z', subscriptions: [{ id: 5800 }, { id: 5801 }] }));
    await r.waitFor(2);
    const jobs = await waitUntil(async () => {
      const j = await pendingJobs(ctx);
      return j.length === 2 && j.every((x) => x.payload.attempt === 2 && x.locked_at === null) ? j : null;
    }, 10_000, 'both retries queued');
    expect(jobs.map((j) => j.queue_name)).toEqual([`notify:${ep.id}`, `notify:${ep.id}`]);
  });

  it('replays failed messages (same webhook-id) and re-enables the endpoint; ?since filters', async () => {
    let gone = true;
    const r = await receiver(() => ({ status: gone ? 410 : 200 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    r.verifyWith = [ep.secret];
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 59, connectionId: 590, subscriptions: [{ id: 5900 }] }));
    await waitUntil(async () => (await messageRows(ep.id))[0]?.status === 'failed', 10_000, 'message failed');

    const future = new Date(Date.now() + 3600_000).toISOString();
    const none = await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay?since=${encodeURIComponent(future)}`);
    expect(none.status).toBe(202);
    expect(await none.json()).toEqual({ replayed: 0 });
    expect((await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay?since=yesterday`)).status).toBe(400);

    gone = false;
    const res = await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay?since=${encodeURIComponent(new Date(Date.now() - 60_000).toISOString())}`);
    expect(await res.json()).toEqual({ replayed: 1 });
    await r.waitFor(2);
    expect(r.received[1].headers['webhook-id']).toBe(r.received[0].headers['webhook-id']);
    expect(r.received[1].verified).toEqual([true]);
    await waitUntil(async () => (await messageRows(ep.id))[0]?.status === 'succeeded', 5_000, 'message succeeded');
    const list = await (await ctx.request('GET', '/webhook-endpoints')).json();
    expect(list.endpoints[0].disabled).toBe(false);
  });

  it('replay sends messages waiting in a long backoff now, and keeps counting attempts', async () => {
    let n = 0;
    const r = await receiver(() => (++n === 1 ? { status: 410 } : n === 2 ? { status: 429, headers: { 'retry-after': '36000' } } : { status: 200 }));
    const ep = await createEndpoint(ctx, { url: r.url });
    await ctx.startWorker();
    await sync(syncedPayload({ userId: 61, connectionId: 610, subscriptions: [{ id: 6100 }] }));
    await waitUntil(async () => (await messageRows(ep.id))[0]?.status === 'failed', 10_000, 'failed on 410');
    // Replayed: attempt 2 (not a second attempt 1) answers 429, retry in 10 h.
    expect(await (await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay`)).json()).toEqual({ replayed: 1 });
    const [waiting] = await waitUntil(async () => {
      const jobs = await pendingJobs(ctx);
      return jobs.length && jobs[0].payload.attempt === 3 && jobs[0].locked_at === null ? jobs : null;
    }, 10_000, 'the retry in 10 h');
    expect(Date.parse(waiting.run_at) - Date.now()).toBeGreaterThan(9 * 3600_000);
    // The receiver is fixed: replay sends the waiting message now.
    expect(await (await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay`)).json()).toEqual({ replayed: 1 });
    await r.waitFor(3, 10_000);
    await waitUntil(async () => (await messageRows(ep.id))[0]?.status === 'succeeded', 5_000, 'succeeded');
    const log = await (await ctx.request('GET', `/webhook-endpoints/${ep.id}/deliveries`)).json();
    expect(log.deliveries.map((d: any) => [d.attempt, d.status_code])).toEqual([[3, 200], [2, 429], [1, 410]]);
    expect(new Set(r.received.map((g) => g.headers['webhook-id'])).size).toBe(1);
  });

  it('replay ?since= takes any ISO 8601 date or datetime', async () => {
    const ep = await createEndpoint(ctx, { url: 'https://example.com/hook' });
    for (const since of ['2026-11-20', '2026-11-20T08:00Z', '2026-11-20T08:00:00.5+01:00', '2026-11-20T08:00']) {
      const res = await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay?since=${encodeURIComponent(since)}`);
      expect(res.status, since).toBe(202);
    }
    for (const since of ['yesterday', '2026-02-30', '2026-11-20T25:00Z', '']) {
      const res = await ctx.request('POST', `/webhook-endpoints/${ep.id}/replay?since=${encodeURIComponent(since)}`);
      expect(res.status, since).toBe(400);
      expect(JSON.stringify((await res.json()).error)).toMatch(/since/);
    }
  });

  it('records any answer a receiver sends (NUL, binary, gzip) and never lets one record fail the batch', async () => {
    // Five first attempts in one batch; three answers that a text column cannot take as they are.
    const answers = [
      { body: 'ok\u0000done' },
      { body: Buffer.from([0x89, 0x50, 0x4e, 0x47, 0, 0, 0, 0x0d, 0xff, 0xfe]), type: 'image/png' },
      { body: gzipSync('{"ok":true}'), encoding: 'gzip' },
      { body: 'caf\u00e9 \u001b[31mred' },
      { body: 'fine' },
    ];
    const r = await receiver((req, n, res) => {
      const a = answers[(n - 1) % answers.length];
      res.writeHead(200, { 'content-type': a.type ?? 'text/plain', ...(a.encoding ? { 'content-encoding': a.encoding } : {}) }).end(a.body);
    });
    const ep = await createEndpoint(ctx, { url: r.url });
    await sync(syncedPayload({ userId: 60, connectionId: 600, subscriptions: [{ id: 6000 }, { id: 6001 }, { id: 6002 }, { id: 6003 }, { id: 6004 }] }));
    expect(await pendingJobs(ctx, 'deliver_messages')).toHaveLength(1);
    await ctx.startWorker();
    await waitUntil(async () => (await messageRows(ep.id)).every((m) => m.status === 'succeeded'), 15_000, 'every message succeeded');
    await waitUntil(async () => (await pendingJobs(ctx, 'deliver_messages')).length === 0, 5_000, 'the batch job done');
    expect(r.received).toHaveLength(5);
    expect(new Set(r.received.map((g) => g.headers['webhook-id'])).size).toBe(5);

    const log = await (await ctx.request('GET', `/webhook-endpoints/${ep.id}/deliveries`)).json();
    expect(log.deliveries).toHaveLength(5);
    const responses = log.deliveries.map((d: any) => d.response as string);
    for (const text of responses) expect(text).not.toMatch(/[\u0000\u001b]/);
    expect(responses).toContain('fine');
    expect(responses).toContain('café \ufffd[31mred');
    expect(responses.find((t: string) => t.includes('gzip'))).toBe(`[binary response: ${gzipSync('{"ok":true}').length} bytes, text/plain, content-encoding gzip] base64:${gzipSync('{"ok":true}').toString('base64')}`);
    expect(responses.find((t: string) => t.includes('image/png'))).toMatch(/^\[binary response: 10 bytes, image\/png\] base64:/);
    expect(responses.find((t: string) => t.startsWith('[binary') && t.includes('text/plain') && !t.includes('gzip'))).toBe(`[binary response: 7 bytes, text/plain] base64:${Buffer.from('ok\u0000done').toString('base64')}`);
  });
});
