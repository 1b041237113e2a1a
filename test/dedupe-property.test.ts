import { createHash } from 'node:crypto';
import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { announceDocument } from '../src/notify/announce.js';
import { createTestContext, type TestContext } from './helpers/context.js';

// "A bill is announced once" as a property (fast-check): whatever the aggregator does with its ids — new
// connections to the same provider beside the old one, reconnections after an erasure,
// re-issued document ids, the same bill twice in one sync — every distinct bill is
// announced exactly once, and a bill that differs from another only in its amount or its
// number is never taken for it. Real webhooks through the app and the real announce task,
// several at once (as the worker runs them); the file download is stood in for by
// settling the file row with the bill's sha256, as the file job would.
let ctx: TestContext;
let announce: ReturnType<typeof announceDocument>;
beforeAll(async () => {
  ctx = await createTestContext();
  announce = announceDocument(ctx.deps);
});
afterAll(() => ctx.close());

/** A bill: how the aggregator presents it (a file, the fields that identify it, or both). */
interface Bill {
  base: number;
  variant: 'amount' | 'number' | null;
  hasFile: boolean;
  hasFields: boolean;
  issuer: boolean;
}

const billShape = fc
  .record({ hasFile: fc.boolean(), hasFields: fc.boolean(), issuer: fc.boolean() })
  .filter((b) => b.hasFile || b.hasFields);
const pool = fc.array(fc.record({ shape: billShape, variant: fc.constantFrom(null, 'amount' as const, 'number' as const) }), { minLength: 1, maxLength: 5 });

type Step =
  | { kind: 'sync'; newConnection: boolean; conn: number; docs: { bill: number; reissue: boolean }[] }
  | { kind: 'erase'; conn: number };
const step: fc.Arbitrary<Step> = fc.oneof(
  {
    weight: 4,
    arbitrary: fc.record({
      kind: fc.constant('sync' as const),
      newConnection: fc.boolean(),
      conn: fc.nat(),
      docs: fc.array(fc.record({ bill: fc.nat(), reissue: fc.boolean() }), { minLength: 1, maxLength: 6 }),
    }),
  },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('erase' as const), conn: fc.nat() }) },
);

// Ids are unique across runs (an id belongs to the user that first brought it).
let nextId = 1_000_000;
let clock = Date.parse('2026-01-01T00:00:00Z');
const newId = () => nextId++;

function billsOf(p: { shape: { hasFile: boolean; hasFields: boolean; issuer: boolean }; variant: Bill['variant'] }[]): Bill[] {
  const out: Bill[] = [];
  p.forEach((b, base) => {
    out.push({ base, variant: null, ...b.shape });
    // Another bill that differs from this one in its amount or its number only.
    if (b.variant) out.push({ base, variant: b.variant, ...b.shape });
  });
  return out;
}

const documentOf = (b: Bill, id: number, subscriptionId: number) => ({
  id,
  id_subscription: subscriptionId,
  name: `Bill ${b.base}`,
  type: 'bill',
  date: `2026-${String(b.base + 1).padStart(2, '0')}-01`,
  duedate: null,
  number: b.hasFields ? (b.variant === 'number' ? `N${b.base}-2` : `N${b.base}`) : null,
  issuer: b.issuer ? 'Acme' : null,
  total_amount: 10 + b.base + (b.variant === 'amount' ? 0.01 : 0),
  currency: 'EUR',
  url: b.hasFile ? `https://provider.example/${id}.pdf` : null,
  has_file_on_website: b.hasFile,
});

it('announces every distinct bill exactly once, whatever the id churn', async () => {
  await fc.assert(
    fc.asyncProperty(pool, fc.array(step, { minLength: 1, maxLength: 6 }), async (p, steps) => {
      const bills = billsOf(p);
      const userId = newId();
      const fileSha = (b: Bill) => createHash('sha256').update(`${userId}:${b.base}:${b.variant}`).digest('hex');
      const live: { id: number; subscriptionId: number; docOf: Map<number, number> }[] = [];
      const billOfDoc = new Map<number, number>();
      const announced = new Map<number, number>(); // bill index → announcements
      const seen = new Set<number>();

      for (const s of steps) {
        if (s.kind === 'erase') {
          if (live.length === 0) continue;
          const [c] = live.splice(s.conn % live.length, 1);
          expect((await ctx.sendWebhook('CONNECTION_DELETED', { id: c.id, id_user: userId })).status).toBe(200);
          continue;
        }
        let c = live.length && !s.newConnection ? live[s.conn % live.length] : undefined;
        if (!c) live.push((c = { id: newId(), subscriptionId: newId(), docOf: new Map() }));
        const inPayload = new Set<number>();
        const fresh: number[] = [];
        const docs = s.docs.map(({ bill, reissue }) => {
          const i = bill % bills.length;
          let id = c.docOf.get(i);
          // A re-issued id, or the same bill listed twice in one sync: a new document id.
          if (id === undefined || reissue || inPayload.has(id)) {
            id = newId();
            fresh.push(id);
            billOfDoc.set(id, i);
            c.docOf.set(i, id);
          }
          inPayload.add(id);
          seen.add(i);
          return documentOf(bills[i], id, c.subscriptionId);
        });
        const body = {
          user: { id: userId },
          connection: {
            id: c.id, id_user: userId, id_connector: 40, state: null, error_message: null,
            last_update: new Date((clock += 60_000)).toISOString(), next_try: null, active: true,
            subscriptions: [{ id: c.subscriptionId, id_connection: c.id, id_user: userId, number: 'SUB-1', label: 'Contract', subscriber: null, validity: null, renewdate: null, documents: docs }],
          },
        };
        const res = await ctx.sendWebhook('CONNECTION_SYNCED', body);
        expect(res.status, await res.clone().text()).toBe(200);

        // The file job's part: the file of each new document is settled with the bill's bytes.
        for (const id of fresh) {
          const b = bills[billOfDoc.get(id)!];
          if (b.hasFile) await ctx.deps.db.execute(sql`update document_files set status = 'ready', sha256 = ${fileSha(b)} where document_id = ${id}`);
        }
        // The announce jobs of this sync, all at once (the worker runs several in parallel).
        await Promise.all(fresh.map((documentId) => announce({ documentId }, {} as never)));
        const rows = await ctx.deps.db.execute<{ id: number }>(sql`
          select substring(dedupe_key from 18)::float8 as id from events
          where type = 'document.created' and dedupe_key = any(${`{${fresh.map((id) => `document.created:${id}`).join(',')}}`}::text[])`);
        for (const r of rows) {
          const i = billOfDoc.get(Number(r.id))!;
          announced.set(i, (announced.get(i) ?? 0) + 1);
        }
      }

      for (const i of seen) expect(announced.get(i) ?? 0, `bill ${JSON.stringify(bills[i])} of ${JSON.stringify(bills)}`).toBe(1);
      expect([...announced.keys()].every((i) => seen.has(i))).toBe(true);
    }),
    { numRuns: 12 },
  );
}, 60_000);
