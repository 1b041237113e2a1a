import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { applyConnectionSync } from '../src/archive/diff.js';
import { connectionSyncOf, inboundSchemas } from '../src/inbound/payloads.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { syncedPayload } from './helpers/webhooks.js';

// A large sync's documents statement keeps its rows in memory, not in temporary files:
// work_mem is raised for its transaction, 1 KiB per document (archive/diff.ts,
// documentsWorkMemKb), and never lowered below the server's own.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const ROLLBACK = new Error('rollback');

/** work_mem after applying a sync of `documents` new documents under `workMem`, in a transaction rolled back after. */
async function workMemAfterSync(documents: number, workMem: string, connectionId: number): Promise<string> {
  const schemas = inboundSchemas(ctx.config.webhookTimezone);
  const base = connectionId * 1_000_000;
  const payload = syncedPayload({
    connectionId,
    subscriptions: [{ id: base, documents: Array.from({ length: documents }, (_, i) => ({ id: base + 1 + i })) }],
  });
  const sync = connectionSyncOf(schemas.connectionSynced.parse(payload).connection);
  let seen = '';
  await ctx.deps.db
    .transaction(async (tx) => {
      await tx.execute(sql.raw(`set local work_mem = '${workMem}'`));
      const { outcome } = await applyConnectionSync(tx, sync);
      expect(outcome.status).toBe('processed');
      seen = (await tx.execute<{ work_mem: string }>(sql`show work_mem`))[0].work_mem;
      throw ROLLBACK;
    })
    .catch((e) => {
      if (e !== ROLLBACK) throw e;
    });
  return seen;
}

it('raises work_mem to 1 KiB per document for a large sync', async () => {
  expect(await workMemAfterSync(6_000, '4MB', 61)).toBe('6000kB');
});

it('leaves a larger work_mem, and a small sync, as they were', async () => {
  expect(await workMemAfterSync(6_000, '64MB', 62)).toBe('64MB');
  expect(await workMemAfterSync(100, '4MB', 63)).toBe('4MB');
});
