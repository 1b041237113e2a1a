import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { loadConfig } from '../src/config.js';
import { pruneRetention, pruneRetentionTask } from '../src/retention/prune.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * prune_retention: old and new rows of every table it prunes, side by side; after a run,
 * exactly the old ones are gone — and never a message still waiting to be delivered, nor
 * the event it belongs to.
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const DAY = 86_400_000;
const ago = (days: number) => new Date(Date.now() - days * DAY).toISOString();
const OLD = 31, RECENT = 29;

async function seed() {
  const sql = ctx.database.sql;
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({
    userId: 1, connectionId: 11, subscriptions: [{ id: 111, documents: [1001, 1002, 1003, 1004].map((id) => ({ id, url: null })) }],
  }))).status).toBe(200);
  await sql`insert into webhook_endpoints (id, url, secret) values ('ep', 'https://receiver.example/hook', 'whsec_x')`;

  // [event id, age in days, its message's status or null for none]
  const events: [string, number, string | null][] = [
    ['ev_old_ok', OLD, 'succeeded'], ['ev_old_failed', OLD, 'failed'], ['ev_old_waiting', OLD, 'pending'],
    ['ev_old_bare', OLD, null], ['ev_new_failed', RECENT, 'failed'], ['ev_new_ok', 1, 'succeeded'], ['ev_new_bare', RECENT, null],
  ];
  for (const [id, days, status] of events) {
    await sql`insert into events (id, dedupe_key, type, data, created_at) values (${id}, ${id}, 'document.created', '{}', ${ago(days)})`;
    if (!status) continue;
    const msg = id.replace('ev_', 'msg_');
    await sql`insert into messages (id, event_id, endpoint_id, status, attempts, created_at) values (${msg}, ${id}, 'ep', ${status}, 1, ${ago(days)})`;
    await sql`insert into delivery_attempts (message_id, endpoint_id, attempt, status_code, duration_ms, at) values (${msg}, 'ep', 1, 500, 3, ${ago(days)})`;
  }
  // The mail log: [document, status, age]
  for (const [doc, status, days] of [[1001, 'sent', OLD], [1002, 'failed', OLD], [1003, 'sending', OLD], [1004, 'sent', RECENT]] as const) {
    await sql`insert into email_deliveries (document_id, user_id, "to", message_id, status, updated_at)
      values (${doc}, 1, 'a@b.example', ${`<d${doc}@x>`}, ${status}, ${ago(days)})`;
  }
  for (const [kind, days] of [['failure', OLD], ['gave_up', OLD], ['recovered', RECENT]] as const) {
    await sql`insert into captcha_attempts (connection_id, kind, attempt, at) values (11, ${kind}, 1, ${ago(days)})`;
  }
  for (const [key, days] of [['k_old1', OLD], ['k_old2', 40], ['k_old3', 400], ['k_recent', RECENT], ['k_new', 0]] as const) {
    await sql`insert into inbound_deliveries (key, event, outcome, received_at) values (${key}, 'CONNECTION_SYNCED', 'processed', ${ago(days)})`;
  }
}

const ids = async (query: string) => (await ctx.database.sql.unsafe<{ id: string }[]>(query)).map((r) => String(r.id)).sort();

describe('prune_retention', () => {
  it('deletes exactly what is older than its period, in batches, and keeps what may still be delivered', async () => {
    await seed();
    const before = await ids(`select key as id from inbound_deliveries`);
    // Batches of 2: every table needs several statements.
    const deleted = await pruneRetention(ctx.deps.db, { deliveries: 30, events: 30, inboundKeys: 30 }, { batch: 2 });

    expect(await ids(`select id from messages`)).toEqual(['msg_new_failed', 'msg_new_ok', 'msg_old_waiting']);
    expect(await ids(`select message_id as id from delivery_attempts`)).toEqual(['msg_new_failed', 'msg_new_ok', 'msg_old_waiting']);
    expect(await ids(`select id from events where id like 'ev\\_%'`)).toEqual(['ev_new_bare', 'ev_new_failed', 'ev_new_ok', 'ev_old_waiting']);
    expect(await ids(`select document_id as id from email_deliveries`)).toEqual(['1003', '1004']);
    expect(await ids(`select kind as id from captcha_attempts`)).toEqual(['recovered']);
    expect(await ids(`select key as id from inbound_deliveries`)).toEqual(
      before.filter((k) => !['k_old1', 'k_old2', 'k_old3'].includes(k)),
    );
    expect(deleted).toMatchObject({ messages: 2, email_deliveries: 2, captcha_attempts: 2, inbound_deliveries: 3 });
    // The documents and their connection are not the retention's business.
    expect(await ids(`select id from documents`)).toEqual(['1001', '1002', '1003', '1004']);

    // Once the waiting message is delivered and old, it goes, and its event with it.
    await ctx.database.sql`update messages set status = 'succeeded' where id = 'msg_old_waiting'`;
    const again = await pruneRetention(ctx.deps.db, { deliveries: 30, events: 30, inboundKeys: 30 });
    expect(again).toMatchObject({ messages: 1, events: 1 });
    expect(await ids(`select id from events where id like 'ev\\_%'`)).toEqual(['ev_new_bare', 'ev_new_failed', 'ev_new_ok']);
  });

  it('the task uses the configured periods (RETAIN_*_DAYS)', async () => {
    expect(loadConfig({ ADMIN_TOKEN: 'x'.repeat(20), LINK_SECRET: 'y'.repeat(20), RETAIN_INBOUND_KEYS_DAYS: '45' }).retentionDays)
      .toEqual({ deliveries: 30, events: 30, inboundKeys: 45 });
    expect(() => loadConfig({ ADMIN_TOKEN: 'x'.repeat(20), LINK_SECRET: 'y'.repeat(20), RETAIN_EVENTS_DAYS: '0' })).toThrow('RETAIN_EVENTS_DAYS');
    const deps = { ...ctx.deps, config: { ...ctx.deps.config, retentionDays: { deliveries: 30, events: 30, inboundKeys: 10 } } };
    await pruneRetentionTask(deps)({}, {} as JobHelpers);
    expect(await ids(`select key as id from inbound_deliveries where key like 'k\\_%'`)).toEqual(['k_new']);
  });
});
