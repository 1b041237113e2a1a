import { Writable } from 'node:stream';
import { sql } from 'drizzle-orm';
import { pino } from 'pino';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sqlArray } from '../src/db/arrays.js';
import { captchaJobKey } from '../src/jobs/keys.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { rescheduleNow } from './helpers/jobs.js';
import { syncedPayload } from './helpers/webhooks.js';

// Captcha retries without UPSTREAM_API_URL: retries are tracked and their due times shown,
// nothing is requested, and the worker says so once.
let ctx: TestContext;
const lines: { level: number; msg: string }[] = [];
beforeAll(async () => {
  ctx = await createTestContext();
  expect(ctx.config.upstreamApiUrl).toBeUndefined();
  // Capture what the worker logs (its handlers are built from deps when it starts).
  const sink = new Writable({
    write(chunk, _enc, done) {
      for (const l of String(chunk).split('\n').filter(Boolean)) lines.push(JSON.parse(l));
      done();
    },
  });
  ctx.deps.log = pino({ level: 'info' }, sink);
  await ctx.startWorker();
});
afterAll(() => ctx?.close());

it('tracks and shows due retries, requests nothing, and logs the missing URL once', async () => {
  expect((await ctx.request('POST', '/config', { body: { 'captcha.enabled': '1' } })).status).toBe(200);
  const u = 70, conns = [710, 720];
  for (const c of conns) {
    const res = await ctx.sendWebhook(
      'CONNECTION_SYNCED',
      syncedPayload({ userId: u, connectionId: c, state: 'websiteUnavailable', errorMessage: 'Captcha required', subscriptions: [] }),
    );
    expect(res.status).toBe(200);
  }
  const shown = new Map<number, string>();
  for (const c of conns) {
    const conn = await (await ctx.request('GET', `/users/${u}/connections/${c}`)).json();
    expect(conn.captcha).toMatchObject({ status: 'retrying', attempts: 1 });
    expect(Date.parse(conn.captcha.next_retry_at)).toBeGreaterThan(Date.now() + 9 * 60_000);
    shown.set(c, conn.captcha.next_retry_at);
  }

  expect(await rescheduleNow(ctx.deps.db, sql`key = any(${sqlArray(conns.map(captchaJobKey), 'text')})`)).toBe(2);
  const deadline = Date.now() + 15_000;
  for (;;) {
    const [{ n }] = await ctx.database.sql<{ n: number }[]>`
      select count(*)::int as n from captcha_attempts where kind = 'resync_not_requested' and connection_id in ${ctx.database.sql(conns)}`;
    if (n === 2) break;
    if (Date.now() > deadline) throw new Error('the due jobs did not run');
    await new Promise((r) => setTimeout(r, 50));
  }

  for (const c of conns) {
    const conn = await (await ctx.request('GET', `/users/${u}/connections/${c}`)).json();
    // Still retrying, and the due time stays visible: the operator sees what would have happened.
    expect(conn.captcha).toEqual({ status: 'retrying', attempts: 1, next_retry_at: shown.get(c), upstream_errors: 0, upstream_error: null });
  }
  const told = lines.filter((l) => l.msg.includes('UPSTREAM_API_URL'));
  expect(told).toHaveLength(1);
  expect(told[0].level).toBe(40); // warn
  expect(lines.some((l) => /re-sync requested/.test(l.msg))).toBe(false);
});
