import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captchaJobKey } from '../src/jobs/keys.js';
import { waitUntil } from './helpers/receiver.js';
import { createTestContext, fixture, type TestContext } from './helpers/context.js';
import { rescheduleNow, waitForIdleQueue } from './helpers/jobs.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * Captcha retries end to end: real webhooks, the real worker, and a loopback HTTP server
 * playing the aggregator API (it records every re-sync request). Time is moved by setting
 * the job's run_at in the database, never by waiting for the backoff.
 */
const UPSTREAM_TOKEN = 'upstream-token-for-tests';
const MIN = 60_000;

interface Call { method: string; path: string; authorization: string | undefined }
interface Aggregator { url: string; calls: Call[]; answers: Map<string, number[]>; close(): Promise<void> }

/** The aggregator: answers each PUT with the next planned status for its path (0: drops the connection), else 200. */
async function startAggregator(): Promise<Aggregator> {
  const calls: Call[] = [];
  const answers = new Map<string, number[]>();
  const server: Server = createServer((req, res) => {
    req.resume();
    req.on('end', () => {
      const path = req.url ?? '';
      calls.push({ method: req.method ?? '', path, authorization: req.headers.authorization });
      const status = answers.get(path)?.shift() ?? 200;
      if (status === 0) return req.socket.destroy(); // unreachable: the connection drops
      res.writeHead(status, { 'content-type': 'application/json' });
      res.end(status < 300 ? '{"state": null}' : '{"code": "internalError"}');
    });
  });
  await new Promise<void>((ok) => server.listen(0, '127.0.0.1', ok));
  const { port } = server.address() as AddressInfo;
  return { url: `http://127.0.0.1:${port}/2.0`, calls, answers, close: () => new Promise((ok) => server.close(() => ok())) };
}

let ctx: TestContext;
let upstream: Aggregator;
beforeAll(async () => {
  upstream = await startAggregator();
  ctx = await createTestContext({ UPSTREAM_API_URL: upstream.url, UPSTREAM_API_TOKEN: UPSTREAM_TOKEN });
  await ctx.startWorker();
});
afterAll(async () => {
  await ctx?.close();
  await upstream?.close();
});

let nextId = 5000;
const ids = () => ++nextId * 10;
let webhookId = 1;
let clock = Date.parse('2026-11-21T08:00:00Z');
/** A later last_update for each sync, so none of them is stale. */
const later = () => new Date((clock += MIN)).toISOString();

const captchaSync = (u: number, c: number, lastUpdate = later()) =>
  syncedPayload({ idWebhookData: webhookId++, userId: u, connectionId: c, state: 'websiteUnavailable', captchaRequired: true, lastUpdate, subscriptions: [] });
const okSync = (u: number, c: number) => syncedPayload({ idWebhookData: webhookId++, userId: u, connectionId: c, lastUpdate: later(), subscriptions: [] });
const otherFailure = (u: number, c: number) =>
  syncedPayload({ idWebhookData: webhookId++, userId: u, connectionId: c, state: 'wrongpass', errorMessage: 'bad password', lastUpdate: later(), subscriptions: [] });

async function send(p: unknown) {
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', p);
  expect(res.status).toBe(200);
  return (await res.json()) as { status: string };
}
async function setConfig(body: Record<string, string>) {
  const res = await ctx.request('POST', '/config', { body });
  expect(res.status).toBe(200);
}
async function connection(u: number, c: number) {
  const res = await ctx.request('GET', `/users/${u}/connections/${c}`);
  expect(res.status).toBe(200);
  return (await res.json()) as {
    next_try: string | null;
    captcha: null | { status: string; attempts: number; next_retry_at: string | null; upstream_errors: number; upstream_error: string | null };
  };
}
/** Pending captcha_resync jobs of a connection, whatever their key. */
async function resyncJobs(c: number) {
  return ctx.database.sql<{ key: string | null; run_at_ms: number; attempts: number; last_error: string | null; locked: boolean }[]>`
    select j.key, (extract(epoch from j.run_at) * 1000)::float8 as run_at_ms, j.attempts, j.last_error, j.locked_at is not null as locked
    from graphile_worker.jobs j
    join graphile_worker._private_jobs p using (id) -- the public view has no payload
    where j.task_identifier = 'captcha_resync' and (p.payload->>'connectionId')::bigint = ${c}`;
}
/** Make the connection's pending re-sync due now (instead of in 10 minutes or more). */
async function makeDue(c: number) {
  expect(await rescheduleNow(ctx.deps.db, sql`key = ${captchaJobKey(c)}`)).toBe(1);
}
async function history(c: number) {
  const rows = await ctx.database.sql<{ kind: string; attempt: number | null; detail: string | null }[]>`
    select kind, attempt, detail from captcha_attempts where connection_id = ${c} order by id`;
  return rows.map((r) => ({ ...r }));
}
async function events(c: number) {
  return ctx.database.sql<{ type: string; data: any }[]>`
    select type, data from events where type like 'connection.%' and (data->'connection'->>'id')::bigint = ${c} order by created_at`;
}
const callsFor = (u: number, c: number) => upstream.calls.filter((x) => x.path === `/2.0/users/${u}/connections/${c}`);

const waitFor = <T>(what: string, probe: () => Promise<T | undefined | false | null>, timeoutMs = 15_000) => waitUntil(probe, timeoutMs, what);
const noPendingJob = (c: number) => waitFor('the re-sync job to finish', async () => (await resyncJobs(c)).length === 0);
/** The request was accepted: the job is replaced by its follow-up, due in 6 hours. */
const awaitingOutcome = (c: number) =>
  waitFor('the accepted request and its follow-up', async () => {
    const jobs = await resyncJobs(c);
    return jobs.length === 1 && jobs[0].attempts === 0 && jobs[0].run_at_ms > Date.now() + 5.9 * 3600_000;
  });

describe('captcha-induced retries', () => {
  it('disabled: counted and shown, nothing scheduled; switching on retries every disabled connection at once', async () => {
    await setConfig({ 'captcha.enabled': '0' });
    const f = fixture('CONNECTION_SYNCED_captcha');
    expect(await send(f)).toMatchObject({ status: 'processed' });
    const before = await connection(7, 31);
    expect(before.captcha).toEqual({ status: 'disabled', attempts: 1, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    expect(before.next_try).toBe('2026-11-21T12:00:40.000Z'); // Powens' own next_try, Paris time → UTC
    expect(await resyncJobs(31)).toEqual([]);

    // A refused config change changes nothing, the switch included (one transaction).
    const bad = await ctx.request('POST', '/config', { body: { 'captcha.enabled': '1', 'captcha.max_retries': 'lots' } });
    expect(bad.status).toBe(400);
    expect((await connection(7, 31)).captcha?.status).toBe('disabled');

    const t0 = Date.now();
    await setConfig({ 'captcha.enabled': '1' });
    await waitFor('the re-sync request', async () => callsFor(7, 31).length === 1);
    expect(callsFor(7, 31)[0]).toEqual({ method: 'PUT', path: '/2.0/users/7/connections/31', authorization: `Bearer ${UPSTREAM_TOKEN}` });
    await awaitingOutcome(31);
    // Accepted: nothing is due any more until the next sync says how it went.
    const after = await connection(7, 31);
    expect(after.captcha).toEqual({ status: 'retrying', attempts: 1, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    const h = await history(31);
    expect(h.map((r) => r.kind)).toEqual(['failure', 'disabled', 'scheduled', 'resync_requested']);
    expect(h[0]).toMatchObject({ attempt: 1, detail: 'The website asked for a captcha that could not be solved' });
    expect(h[3]).toMatchObject({ attempt: 1, detail: 'HTTP 200' });
    expect(Date.now() - t0).toBeLessThan(15_000);
  });

  it('schedules each retry after its backoff, gives up at captcha.max_retries with one event, and a non-captcha failure in between resets nothing', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '3' });
    const u = ids(), c = ids();

    for (const [attempt, minutes] of [[1, 10], [2, 20]] as const) {
      const sentAt = Date.now();
      await send(captchaSync(u, c));
      const conn = await connection(u, c);
      expect(conn.captcha).toMatchObject({ status: 'retrying', attempts: attempt });
      const due = Date.parse(conn.captcha!.next_retry_at!);
      expect(due).toBeGreaterThanOrEqual(sentAt + minutes * MIN);
      expect(due).toBeLessThanOrEqual(Date.now() + minutes * MIN * 1.1);
      const jobs = await resyncJobs(c);
      expect(jobs).toHaveLength(1);
      expect(jobs[0].run_at_ms).toBe(due); // the job runs when the API says it will
      expect(callsFor(u, c)).toHaveLength(attempt - 1); // not before it is due

      await makeDue(c);
      await waitFor('the re-sync request', async () => callsFor(u, c).length === attempt);
      await awaitingOutcome(c);

      if (attempt === 1) {
        await send(otherFailure(u, c));
        expect((await connection(u, c)).captcha).toMatchObject({ status: 'retrying', attempts: 1 });
      }
    }

    await send(captchaSync(u, c));
    const gaveUp = await connection(u, c);
    expect(gaveUp.captcha).toEqual({ status: 'gave_up', attempts: 3, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    expect(await resyncJobs(c)).toEqual([]);
    let ev = await events(c);
    expect(ev.map((e) => e.type)).toEqual(['connection.captcha_gave_up']);
    expect(ev[0].data.attempts).toBe(3);
    expect(ev[0].data.connection).toMatchObject({ id: c, id_user: u, state: 'websiteUnavailable', captcha: { status: 'gave_up', attempts: 3, next_retry_at: null, upstream_errors: 0, upstream_error: null } });

    // Still failing afterwards: counted in the history, no new retry, no second event.
    await send(captchaSync(u, c));
    expect((await connection(u, c)).captcha).toEqual({ status: 'gave_up', attempts: 4, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    expect(await resyncJobs(c)).toEqual([]);
    ev = await events(c);
    expect(ev).toHaveLength(1);
    expect(callsFor(u, c)).toHaveLength(2);
    expect((await history(c)).map((r) => r.kind)).toEqual([
      'failure', 'scheduled', 'resync_requested', 'other_failure',
      'failure', 'scheduled', 'resync_requested',
      'failure', 'gave_up', 'failure',
    ]);
  });

  it('a successful sync clears captcha, cancels the pending retry and sends connection.recovered with the attempts', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '6' });
    const u = ids(), c = ids();
    await send(captchaSync(u, c));
    await makeDue(c);
    await waitFor('the re-sync request', async () => callsFor(u, c).length === 1);
    await awaitingOutcome(c);
    await send(captchaSync(u, c));
    expect(await resyncJobs(c)).toHaveLength(1);

    await send(okSync(u, c));
    const conn = await connection(u, c);
    expect(conn.captcha).toBeNull();
    expect(await resyncJobs(c)).toEqual([]);
    const ev = await events(c);
    expect(ev.map((e) => e.type)).toEqual(['connection.recovered']);
    expect(ev[0].data).toMatchObject({ attempts: 2, connection: { id: c, id_user: u, state: null, captcha: null } });
    expect((await history(c)).at(-1)).toMatchObject({ kind: 'recovered', attempt: 2 });

    // A new run of failures starts from one, and a second recovery is a second event.
    await send(captchaSync(u, c));
    expect((await connection(u, c)).captcha).toMatchObject({ status: 'retrying', attempts: 1 });
    await send(okSync(u, c));
    const again = await events(c);
    expect(again.map((e) => [e.type, e.data.attempts])).toEqual([['connection.recovered', 2], ['connection.recovered', 1]]);
  });

  it('never has two pending retries for one connection, under concurrent syncs', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '50' });
    const u = ids(), c = ids();
    await send(okSync(u, c)); // the connection exists before the burst
    const base = clock;
    clock += 100 * MIN;
    // Twelve different deliveries, in shuffled last_update order: some arrive stale.
    const order = [5, 0, 11, 3, 8, 1, 10, 2, 7, 4, 9, 6];
    const results = await Promise.all(
      order.map((i) => send(captchaSync(u, c, new Date(base + (i + 1) * MIN).toISOString()))),
    );
    const processed = results.filter((r) => r.status === 'processed').length;
    expect(processed).toBeGreaterThanOrEqual(1);
    expect(processed + results.filter((r) => r.status === 'stale').length).toBe(order.length);

    const conn = await connection(u, c);
    expect(conn.captcha).toMatchObject({ status: 'retrying', attempts: processed });
    const jobs = await resyncJobs(c);
    expect(jobs).toHaveLength(1);
    expect(jobs[0].key).toBe(`captcha:${c}`);
    expect(new Date(jobs[0].run_at_ms).toISOString()).toBe(conn.captcha!.next_retry_at);
    expect((await history(c)).filter((r) => r.kind === 'failure')).toHaveLength(processed);

    await makeDue(c);
    await waitFor('the re-sync request', async () => callsFor(u, c).length === 1);
    await awaitingOutcome(c);
    await waitForIdleQueue(ctx.deps.db, ['captcha_resync']); // a second request would have been made by now
    expect(callsFor(u, c)).toHaveLength(1);
  });

  it('erasure mid-retry (CONNECTION_DELETED, DELETE, USER_DELETED) cancels the retry and removes the history', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '6' });
    const u = ids(), c1 = ids(), c2 = ids(), u2 = ids(), c3 = ids(), c4 = ids();
    for (const [uu, c] of [[u, c1], [u, c2], [u2, c3], [u2, c4]]) {
      await send(captchaSync(uu, c));
      expect(await resyncJobs(c)).toHaveLength(1);
      expect(await history(c)).not.toEqual([]);
    }

    expect((await ctx.sendWebhook('CONNECTION_DELETED', { id: c1, id_user: u })).status).toBe(200);
    expect((await ctx.request('DELETE', `/users/${u}/connections/${c2}`)).status).toBe(204);
    expect((await ctx.sendWebhook('USER_DELETED', { id: u2 })).status).toBe(200);
    for (const [uu, c] of [[u, c1], [u, c2], [u2, c3], [u2, c4]]) {
      expect(await resyncJobs(c)).toEqual([]);
      expect(await history(c)).toEqual([]);
      expect((await ctx.request('GET', `/users/${uu}/connections/${c}`)).status).toBe(404);
    }

    // A job that was already taken when the connection went (queued here by hand) is a no-op.
    await ctx.database.sql`select graphile_worker.add_job('captcha_resync', json_build_object('connectionId', ${c1}::bigint), job_key := ${`captcha:${c1}`})`;
    await noPendingJob(c1);
    expect(upstream.calls.filter((x) => [c1, c2, c3, c4].some((c) => x.path.endsWith(`/connections/${c}`)))).toEqual([]);
  });

  it('retries upstream errors with their own backoff (1, 2, 4… min), shows them, and never counts them nor gives up', async () => {
    // With max_retries 2, a single upstream error counted as a captcha failure would give up.
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '2' });
    const u = ids(), c = ids();
    const plan = [500, 0, 503, 502, 429];
    upstream.answers.set(`/2.0/users/${u}/connections/${c}`, [...plan]);
    await send(captchaSync(u, c));
    for (const [i, status] of plan.entries()) {
      const n = i + 1;
      const asked = Date.now();
      await makeDue(c);
      await waitFor(`request ${n}`, async () => callsFor(u, c).length === n);
      // The job queues its next try itself: a fresh job, not graphile-worker's retry.
      const [job] = await waitFor(`try ${n} to be queued`, async () => {
        const jobs = await resyncJobs(c);
        return jobs.length === 1 && !jobs[0].locked && jobs[0].attempts === 0 && (await connection(u, c)).captcha?.upstream_errors === n ? jobs : undefined;
      });
      expect(job.last_error).toBeNull();
      const wait = 2 ** i * MIN;
      expect(job.run_at_ms).toBeGreaterThanOrEqual(asked + wait);
      expect(job.run_at_ms).toBeLessThanOrEqual(Date.now() + wait * 1.1);
      const conn = await connection(u, c);
      expect(conn.captcha).toEqual({
        status: 'retrying',
        attempts: 1,
        next_retry_at: new Date(job.run_at_ms).toISOString(),
        upstream_errors: n,
        upstream_error: status === 0 ? expect.any(String) : `HTTP ${status}`,
      });
      expect(conn.captcha!.upstream_error).not.toContain(upstream.url); // shown to the user: no URL, no body
    }
    await makeDue(c);
    await waitFor('the accepted request', async () => callsFor(u, c).length === plan.length + 1);
    await awaitingOutcome(c);
    expect((await connection(u, c)).captcha).toEqual({ status: 'retrying', attempts: 1, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    const h = await history(c);
    expect(h.map((r) => r.kind)).toEqual(['failure', 'scheduled', ...plan.map(() => 'resync_error'), 'resync_requested']);
    expect(h[2].detail).toMatch(/HTTP 500.*error 1 in a row/);
    expect(h.map((r) => r.detail).join()).not.toContain(UPSTREAM_TOKEN);
    expect(await events(c)).toEqual([]);
  });

  it('counts an accepted re-sync never reported back within 6 h as one failure, then follows the decision table', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '6' });
    const u = ids(), silent = ids(), answered = ids();
    for (const c of [silent, answered]) {
      await send(captchaSync(u, c));
      await makeDue(c);
      await awaitingOutcome(c);
    }
    // One of them hears back, with another failure: its follow-up finds a sync since the request.
    await send(otherFailure(u, answered));
    const t0 = Date.now();
    for (const c of [silent, answered]) await makeDue(c);
    await noPendingJob(answered);
    const [next] = await waitFor('the silent one\'s next retry', async () => {
      const jobs = await resyncJobs(silent);
      // Not the follow-up made due above (now), nor one due in 6 h: the next retry, in about 20 min.
      const due = jobs[0]?.run_at_ms - Date.now();
      return jobs.length === 1 && !jobs[0].locked && jobs[0].attempts === 0 && due > 10 * MIN && due < 5 * 3600_000 ? jobs : undefined;
    });

    // The second attempt's backoff: 20 min.
    expect(next.run_at_ms).toBeGreaterThanOrEqual(t0 + 20 * MIN);
    expect(next.run_at_ms).toBeLessThanOrEqual(Date.now() + 22 * MIN);
    expect((await connection(u, silent)).captcha).toEqual({
      status: 'retrying', attempts: 2, next_retry_at: new Date(next.run_at_ms).toISOString(), upstream_errors: 0, upstream_error: null,
    });
    expect((await history(silent)).slice(-2)).toEqual([
      { kind: 'failure', attempt: 2, detail: 'no sync reported within 6 h of the accepted re-sync request' },
      { kind: 'scheduled', attempt: 2, detail: new Date(next.run_at_ms).toISOString() },
    ]);
    expect(await events(silent)).toEqual([]);

    expect((await connection(u, answered)).captcha).toEqual({ status: 'retrying', attempts: 1, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    expect(await events(answered)).toEqual([]);
    expect(callsFor(u, silent)).toHaveLength(1); // the follow-up asks nothing upstream
    expect(callsFor(u, answered)).toHaveLength(1);

    // Its second re-sync is accepted and silent too: with max_retries 3 that third failure gives up.
    await setConfig({ 'captcha.max_retries': '3' });
    await makeDue(silent);
    await awaitingOutcome(silent);
    await makeDue(silent);
    await noPendingJob(silent);
    expect((await connection(u, silent)).captcha).toEqual({ status: 'gave_up', attempts: 3, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    expect((await events(silent)).map((e) => [e.type, e.data.attempts])).toEqual([['connection.captcha_gave_up', 3]]);
    expect(callsFor(u, silent)).toHaveLength(2);
  });

  it('with captcha.max_retries "6", the sixth captcha failure gives up after five re-syncs were requested', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '6' });
    const u = ids(), c = ids();
    for (let failure = 1; failure <= 5; failure++) {
      await send(captchaSync(u, c));
      expect((await connection(u, c)).captcha).toMatchObject({ status: 'retrying', attempts: failure });
      await makeDue(c);
      await waitFor(`re-sync ${failure}`, async () => callsFor(u, c).length === failure);
      await awaitingOutcome(c);
    }
    await send(captchaSync(u, c));
    expect((await connection(u, c)).captcha).toMatchObject({ status: 'gave_up', attempts: 6 });
    expect(await resyncJobs(c)).toEqual([]);
    expect(callsFor(u, c)).toHaveLength(5);
    expect((await events(c)).map((e) => [e.type, e.data.attempts])).toEqual([['connection.captcha_gave_up', 6]]);
  });

  it('leaves no connection disabled when the switch turns on in the middle of captcha syncs', async () => {
    await setConfig({ 'captcha.enabled': '0', 'captcha.max_retries': '50' });
    const u = ids();
    const known = Array.from({ length: 12 }, ids);
    const fresh = Array.from({ length: 12 }, ids);
    for (const c of known) await send(captchaSync(u, c));
    // Failures of already-disabled connections and of new ones, racing the switch.
    const syncs = [...known, ...fresh].map((c, i) =>
      new Promise((r) => setTimeout(r, i % 6)).then(() => ctx.sendWebhook('CONNECTION_SYNCED', captchaSync(u, c))),
    );
    const flip = new Promise((r) => setTimeout(r, 3)).then(() => ctx.request('POST', '/config', { body: { 'captcha.enabled': '1' } }));
    const answers = await Promise.all([...syncs, flip]);
    expect(answers.map((r) => r.status)).toEqual(answers.map(() => 200));
    const rows = await ctx.database.sql<{ status: string }[]>`
      select captcha_status as status from connections where id in ${ctx.database.sql([...known, ...fresh])}`;
    expect(rows.map((r) => r.status)).toEqual(rows.map(() => 'retrying'));
  });

  it('switching captcha.enabled off stops pending retries; the connections show disabled', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '6' });
    const u = ids(), c = ids();
    await send(captchaSync(u, c));
    expect(await resyncJobs(c)).toHaveLength(1);
    await setConfig({ 'captcha.enabled': '0' });
    expect((await connection(u, c)).captcha).toEqual({ status: 'disabled', attempts: 1, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    expect(await resyncJobs(c)).toEqual([]);
    await send(captchaSync(u, c));
    expect((await connection(u, c)).captcha).toEqual({ status: 'disabled', attempts: 2, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    expect(await resyncJobs(c)).toEqual([]);
    expect(callsFor(u, c)).toEqual([]);
  });
});
