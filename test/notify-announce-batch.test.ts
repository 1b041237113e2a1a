import { sql } from 'drizzle-orm';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { announceDocument, announceDocuments } from '../src/notify/announce.js';
import { syncBills as syncBillsOf, type Bill } from './helpers/bills.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint } from './helpers/notify.js';

// announce_documents: the settled files of one batch announced in one transaction, with
// every guarantee of one document's announcement — a bill announced once (also when two
// copies are in one batch), a re-run announcing nothing again, a document that cannot be
// announced holding no other — and a backfill's deliveries after fresh bills'.
let ctx: TestContext;
let batch: ReturnType<typeof announceDocuments>;
let endpointId: string;
beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  batch = announceDocuments(ctx.deps);
  // No worker runs here: the delivery jobs stay queued, to be looked at.
  endpointId = (await createEndpoint(ctx, { url: 'http://127.0.0.1:9/hook', events: ['document.created'] })).id;
});
afterAll(() => ctx.close());

let nextId = 81_000;
/** A sync of these bills (helpers/bills.ts), its queued jobs dropped: the tests run the announcements by hand. */
async function syncBills(userId: number, bills: Bill[]) {
  const { ids } = await syncBillsOf(ctx, userId, bills, () => nextId++);
  await ctx.deps.db.execute(sql`delete from graphile_worker._private_jobs`);
  return ids;
}

const helpers = (priority = 0) => ({ job: { id: '1', priority, attempts: 1, max_attempts: 25 } }) as unknown as JobHelpers;
async function run(ids: number[], priority = 0) {
  const entries = await batch(ids, helpers(priority));
  return entries ? (await Promise.allSettled(entries)).map((e) => e.status) : 'one transaction';
}
const eventCount = async (type: string, documentId: number) =>
  (await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from events where dedupe_key = ${`${type}:${documentId}`}`))[0].n;
const deliveryJobs = () =>
  ctx.deps.db.execute<{ key: string; priority: number; payload: { messageId: string }[] }>(sql`
    select j.key, j.priority, j.payload from graphile_worker._private_jobs j join graphile_worker._private_tasks t on t.id = j.task_id
    where t.identifier = 'deliver_messages' order by j.id`);

describe('announce_documents', () => {
  it('announces a batch in one transaction, a bill once even when two copies are in it; a re-run announces nothing again', async () => {
    const ids = await syncBills(30, [{ number: 'FB-1', amount: 10 }, { number: 'FB-1', amount: 10 }, { number: 'FB-2', amount: 20 }]);
    const erased = nextId++; // no such document (erased since its file settled)
    expect(await run([ids[2], ids[1], ids[0], erased, ids[0]])).toBe('one transaction');

    expect(await eventCount('document.created', ids[0])).toBe(1);
    expect(await eventCount('document.created', ids[1])).toBe(0); // the copy: stored as a repeat, not announced
    expect(await eventCount('document.created', ids[2])).toBe(1);
    const [copy] = await ctx.deps.db.execute<{ duplicate_of: number; duplicate_reason: string }>(
      sql`select duplicate_of::int, duplicate_reason from documents where id = ${ids[1]}`,
    );
    expect(copy).toEqual({ duplicate_of: ids[0], duplicate_reason: 'fields' });
    // One fan-out for the batch: its two messages in one delivery job, at priority 0.
    const jobs = await deliveryJobs();
    expect(jobs).toHaveLength(1);
    expect(jobs[0]).toMatchObject({ priority: 0 });
    expect(jobs[0].key.startsWith(`deliver:${endpointId}:`)).toBe(true);
    expect(jobs[0].payload).toHaveLength(2);

    // The same batch again (a worker killed after its commit), and the old per-document job of one of them.
    expect(await run([ids[0], ids[1], ids[2]])).toBe('one transaction');
    await announceDocument(ctx.deps)({ documentId: ids[2] }, helpers());
    for (const id of [ids[0], ids[2]]) expect(await eventCount('document.created', id)).toBe(1);
    expect(await eventCount('document.created', ids[1])).toBe(0);
    expect((await deliveryJobs()).flatMap((j) => j.payload)).toHaveLength(2);
    await ctx.deps.db.execute(sql`delete from graphile_worker._private_jobs`);
  });

  it("announces each document alone when the batch fails: only the one that cannot be announced is retried", async () => {
    const ids = await syncBills(31, [{ number: 'FC-1', amount: 1 }, { number: 'FC-2', amount: 2 }, { number: 'FC-3', amount: 3 }]);
    expect((await ctx.request('PUT', '/users/31/email-delivery', { body: { to: 'jane@example.com' } })).status).toBe(200);
    await ctx.database.sql`alter table email_deliveries add constraint refuse_in_test check (document_id <> ${ctx.database.sql.unsafe(String(ids[1]))})`;
    try {
      expect(await run(ids)).toEqual(['fulfilled', 'rejected', 'fulfilled']);
      expect(await eventCount('document.created', ids[0])).toBe(1);
      expect(await eventCount('document.created', ids[1])).toBe(0); // rolled back with its mail, to be retried
      expect(await eventCount('document.created', ids[2])).toBe(1);
    } finally {
      await ctx.database.sql`alter table email_deliveries drop constraint refuse_in_test`;
    }
    // graphile-worker's retry: the failed entry alone.
    expect(await run([ids[1]])).toBe('one transaction');
    for (const id of ids) expect(await eventCount('document.created', id)).toBe(1);
    const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from email_deliveries where user_id = 31`);
    expect(n).toBe(3);
    await ctx.deps.db.execute(sql`delete from graphile_worker._private_jobs`);
  });

  it("queues a backfill's deliveries at its priority, in batch jobs of their own", async () => {
    const backfill = await syncBills(32, [{ number: 'FD-1', amount: 1 }, { number: 'FD-2', amount: 2 }]);
    const fresh = await syncBills(33, [{ number: 'FE-1', amount: 1 }]);
    expect(await run(backfill, 2)).toBe('one transaction');
    expect(await run(fresh, 0)).toBe('one transaction');
    const jobs = await deliveryJobs();
    expect(jobs.map((j) => [j.priority, j.payload.length])).toEqual([[2, 2], [0, 1]]);
    expect(jobs[0].key).toMatch(new RegExp(`^deliver:${endpointId}:p2:`));
    expect(jobs[1].key).toMatch(new RegExp(`^deliver:${endpointId}:\\d+$`));
    await ctx.deps.db.execute(sql`delete from graphile_worker._private_jobs`);
  });
});
