import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { captchaJobKey } from '../src/jobs/keys.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * Captcha settings changed while connections are in a captcha run (contract §6): `gave_up`
 * is not final, and a lower `captcha.max_retries` gives up at once. No worker here: the
 * test reads the queue, where a retry "at once" is a job due now.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

let nextId = 700;
const ids = () => ++nextId * 10;
let webhookId = 1;
let clock = Date.parse('2026-11-21T08:00:00Z');
const captchaSync = (u: number, c: number) =>
  syncedPayload({
    idWebhookData: webhookId++, userId: u, connectionId: c, state: 'websiteUnavailable', captchaRequired: true,
    lastUpdate: new Date((clock += 60_000)).toISOString(), subscriptions: [],
  });

async function fail(u: number, c: number, times = 1) {
  for (let i = 0; i < times; i++) expect((await ctx.sendWebhook('CONNECTION_SYNCED', captchaSync(u, c))).status).toBe(200);
}
async function setConfig(body: Record<string, string>) {
  const res = await ctx.request('POST', '/config', { body });
  expect(res.status).toBe(200);
}
async function captcha(u: number, c: number) {
  const res = await ctx.request('GET', `/users/${u}/connections/${c}`);
  expect(res.status).toBe(200);
  return ((await res.json()) as { captcha: { status: string; attempts: number; next_retry_at: string | null } | null }).captcha;
}
/** The connection's pending re-sync: due now or later. */
async function job(c: number) {
  const [row] = await ctx.database.sql<{ due_now: boolean }[]>`
    select run_at <= now() as due_now from graphile_worker.jobs where key = ${captchaJobKey(c)}`;
  return row;
}
async function lastHistory(c: number) {
  const [row] = await ctx.database.sql<{ kind: string; attempt: number; detail: string }[]>`
    select kind, attempt, detail from captcha_attempts where connection_id = ${c} order by id desc limit 1`;
  return { ...row };
}
async function gaveUpEvents(c: number) {
  const rows = await ctx.database.sql<{ attempts: number }[]>`
    select (data->>'attempts')::int as attempts from events
    where type = 'connection.captcha_gave_up' and connection_id = ${c} order by created_at`;
  return rows.map((r) => r.attempts);
}

describe('captcha settings changed mid-run', () => {
  it('turning captcha.enabled to "1" again retries a connection that gave up, at once and with its count', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '2' });
    const u = ids(), c = ids();
    await fail(u, c, 2);
    expect(await captcha(u, c)).toMatchObject({ status: 'gave_up', attempts: 2 });
    expect(await job(c)).toBeUndefined();

    const before = Date.now();
    await setConfig({ 'captcha.enabled': '1' });
    const retried = await captcha(u, c);
    expect(retried).toMatchObject({ status: 'retrying', attempts: 2 });
    expect(Date.parse(retried!.next_retry_at!)).toBeGreaterThanOrEqual(before - 1000);
    expect(Date.parse(retried!.next_retry_at!)).toBeLessThanOrEqual(Date.now());
    expect(await job(c)).toEqual({ due_now: true });
    expect(await lastHistory(c)).toEqual({ kind: 'scheduled', attempt: 2, detail: 'captcha.enabled turned to "1": retry at once' });

    // That retry is one more failure: given up again (2 ≥ 2), and announced again.
    await fail(u, c);
    expect(await captcha(u, c)).toMatchObject({ status: 'gave_up', attempts: 3 });
    expect(await gaveUpEvents(c)).toEqual([2, 3]);
  });

  it('raising captcha.max_retries above a given-up connection\'s attempts retries it; not above, it stays', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '2' });
    const u = ids(), two = ids(), four = ids();
    await fail(u, two, 2);
    await fail(u, four, 4);
    expect(await captcha(u, two)).toMatchObject({ status: 'gave_up', attempts: 2 });
    expect(await captcha(u, four)).toMatchObject({ status: 'gave_up', attempts: 4 });

    await setConfig({ 'captcha.max_retries': '4' });
    expect(await captcha(u, two)).toMatchObject({ status: 'retrying', attempts: 2 });
    expect(await job(two)).toEqual({ due_now: true });
    expect(await lastHistory(two)).toEqual({ kind: 'scheduled', attempt: 2, detail: 'captcha.max_retries raised to 4: retry at once' });
    expect(await captcha(u, four)).toMatchObject({ status: 'gave_up', attempts: 4 });
    expect(await job(four)).toBeUndefined();

    // Retries switched off: a higher limit retries nothing (the switch will, when it turns on).
    await setConfig({ 'captcha.enabled': '0' });
    await setConfig({ 'captcha.max_retries': '10' });
    expect(await captcha(u, four)).toMatchObject({ status: 'gave_up', attempts: 4 });
    expect(await job(four)).toBeUndefined();
  });

  it('lowering captcha.max_retries to or below a retrying connection\'s attempts gives it up now and removes its re-sync', async () => {
    await setConfig({ 'captcha.enabled': '1', 'captcha.max_retries': '6' });
    const u = ids(), three = ids(), one = ids();
    await fail(u, three, 3);
    await fail(u, one, 1);
    expect(await job(three)).toEqual({ due_now: false });

    await setConfig({ 'captcha.max_retries': '3' });
    expect(await captcha(u, three)).toEqual({ status: 'gave_up', attempts: 3, next_retry_at: null, upstream_errors: 0, upstream_error: null });
    expect(await job(three)).toBeUndefined();
    expect(await lastHistory(three)).toEqual({ kind: 'gave_up', attempt: 3, detail: 'captcha.max_retries lowered to 3' });
    expect(await gaveUpEvents(three)).toEqual([3]);
    // Below the new limit: still retrying, its re-sync still queued.
    expect(await captcha(u, one)).toMatchObject({ status: 'retrying', attempts: 1 });
    expect(await job(one)).toEqual({ due_now: false });
    expect(await gaveUpEvents(one)).toEqual([]);
  });
});
