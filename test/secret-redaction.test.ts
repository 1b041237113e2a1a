import { Writable } from 'node:stream';
import { inspect } from 'node:util';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { QueryError } from '../src/db/redact.js';
import { webhookEndpoints } from '../src/db/schema/index.js';
import type { Deps } from '../src/deps.js';
import { createLogger } from '../src/logger.js';
import { startWorker } from '../src/worker.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { waitUntil } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * Secrets and payload values never reach a log line, a job's last_error or a response: with
 * real failing queries (PostgreSQL refuses them), not with errors built to look like them.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
});
afterAll(() => ctx.close());

function capturedDeps(): { deps: Deps; text: () => string; lines: () => Record<string, any>[] } {
  const chunks: string[] = [];
  const stream = new Writable({ write: (chunk, _enc, done) => (chunks.push(String(chunk)), done()) });
  const deps: Deps = { ...ctx.deps, log: createLogger('debug', stream) };
  const text = () => chunks.join('');
  return { deps, text, lines: () => text().split('\n').filter(Boolean).map((l) => JSON.parse(l)) };
}

it('a failed query throws an error with its SQLSTATE and query text, and none of its values', async () => {
  const secret = 'whsec_NEVER_SHOWN_1';
  const row = { id: 'ep_redact1', url: 'http://127.0.0.1:9/a', secret };
  await ctx.deps.db.insert(webhookEndpoints).values(row);
  const err = await ctx.deps.db.insert(webhookEndpoints).values(row).then(() => null, (e: unknown) => e);
  expect(err).toBeInstanceOf(QueryError);
  const e = err as QueryError;
  expect(e.code).toBe('23505');
  expect(e.constraint).toBe('webhook_endpoints_pkey');
  expect(e.message).toContain('insert into "webhook_endpoints"');
  // Everywhere the error can be read: message, stack, its properties and causes.
  for (const view of [e.message, String(e.stack), inspect(e, { depth: 10, showHidden: true }), JSON.stringify(e)]) {
    expect(view).not.toContain('NEVER_SHOWN');
    expect(view).not.toContain('ep_redact1');
  }
});

it('a data exception keeps its message but not the value it quotes', async () => {
  const bad = await ctx.deps.db
    .select()
    .from(webhookEndpoints)
    .where(sql`${webhookEndpoints.createdAt} > ${'2026-02-30 PRIVATE'}::timestamptz`)
    .then(() => null, (e: unknown) => e);
  expect(bad).toBeInstanceOf(QueryError);
  expect((bad as QueryError).code).toMatch(/^22/);
  expect((bad as QueryError).message).toContain('[value redacted]');
  expect(inspect(bad, { depth: 10, showHidden: true })).not.toContain('PRIVATE');
});

it('a 500 on POST /webhook-endpoints logs its request id, SQLSTATE and query, never the secret or the URL', async () => {
  await ctx.database.sql`alter table webhook_endpoints add constraint refuse_in_test check (description is distinct from 'force-failure')`;
  try {
    const { deps, text, lines } = capturedDeps();
    const app = createApp(deps);
    const res = await app.request('/webhook-endpoints', {
      method: 'POST',
      headers: { authorization: `Bearer ${ctx.config.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: 'http://127.0.0.1:9/in?token=URLTOKEN123', description: 'force-failure' }),
    });
    expect(res.status).toBe(500);
    const reqId = res.headers.get('x-request-id');
    expect(reqId).toMatch(/^[\w-]{8,}$/);
    const body = await res.text();
    expect(body).toContain(reqId);
    expect(body).not.toMatch(/whsec_|URLTOKEN123|refuse_in_test/);

    const logged = lines().find((l) => l.msg === 'unhandled error');
    expect(logged?.reqId).toBe(reqId);
    expect(logged?.err.code).toBe('23514');
    expect(logged?.err.message).toContain('insert into "webhook_endpoints"');
    // The row PostgreSQL quotes in its detail ("Failing row contains (…)") holds both.
    expect(text()).not.toContain('whsec_');
    expect(text()).not.toContain('URLTOKEN123');
  } finally {
    await ctx.database.sql`alter table webhook_endpoints drop constraint refuse_in_test`;
  }
});

it("a job failing on a real query keeps none of its values in last_error, nor in the worker's log", async () => {
  // User 51 gets bills by mail; the insert of the mail's row is refused, so announce_document fails.
  const address = 'jane.PRIVATE.doe@example.com';
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 51, connectionId: 5101, subscriptions: [{ id: 51011, documents: [{ id: 510111, name: 'Bill PRIVATE_NAME' }] }] }))).status).toBe(200);
  expect((await ctx.request('PUT', '/users/51/email-delivery', { body: { to: address } })).status).toBe(200);
  await ctx.database.sql`alter table email_deliveries add constraint refuse_in_test check (document_id <> 510111)`;

  const { deps, text } = capturedDeps();
  const worker = await startWorker(deps, ctx.database.url, { pollInterval: 100 });
  try {
    const failed = await waitUntil(async () => {
      const [job] = await ctx.database.sql`select last_error from graphile_worker.jobs where task_identifier = 'announce_document' and last_error is not null`;
      return job;
    });
    expect(failed.last_error).toContain('23514');
    expect(failed.last_error).toContain('insert into "email_deliveries"');
    expect(failed.last_error).not.toContain('PRIVATE');
    expect(failed.last_error).not.toContain('510111');
    expect(text()).toContain('Failed task');
    expect(text()).not.toContain('PRIVATE');
  } finally {
    await worker.stop();
    await ctx.database.sql`alter table email_deliveries drop constraint refuse_in_test`;
  }
});
