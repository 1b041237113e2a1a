import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { documentTotals, wholeMonthsBefore, type TotalsFilter } from '../src/api/document-totals.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

// The list totals come from month buckets kept by triggers (the document_months_triggers migration); they must equal
// a plain count over the documents after any mix of inserts, updates (moves between
// subscriptions, types, dates, months; duplicate flags), deletes, erasures by cascade and
// subscriptions archived — for any filter.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

const USER = 1;
const SUBS = [11, 12, 13];
const day = fc.option(
  fc.record({ y: fc.constantFrom(2024, 2025), m: fc.integer({ min: 1, max: 12 }), d: fc.constantFrom(1, 2, 15, 28, 29, 30, 31) }).map(({ y, m, d }) => {
    const last = new Date(Date.UTC(y, m, 0)).getUTCDate();
    return `${y}-${String(m).padStart(2, '0')}-${String(Math.min(d, last)).padStart(2, '0')}`;
  }),
  { nil: null },
);
const doc = fc.record({ id: fc.integer({ min: 1, max: 40 }), sub: fc.constantFrom(...SUBS), type: fc.constantFrom('bill', 'contract', null), date: day, dup: fc.boolean() });
type Op =
  | { kind: 'upsert'; docs: { id: number; sub: number; type: string | null; date: string | null; dup: boolean }[] }
  | { kind: 'delete'; ids: number[] }
  | { kind: 'dropSubscription'; sub: number }
  | { kind: 'archive'; sub: number; deleted: boolean };
const op: fc.Arbitrary<Op> = fc.oneof(
  { weight: 4, arbitrary: fc.record({ kind: fc.constant('upsert' as const), docs: fc.uniqueArray(doc, { selector: (d) => d.id, minLength: 1, maxLength: 12 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('delete' as const), ids: fc.array(fc.integer({ min: 1, max: 40 }), { maxLength: 8 }) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('dropSubscription' as const), sub: fc.constantFrom(...SUBS) }) },
  { weight: 1, arbitrary: fc.record({ kind: fc.constant('archive' as const), sub: fc.constantFrom(...SUBS), deleted: fc.boolean() }) },
);
const filter = fc.record({
  subscriptionId: fc.option(fc.constantFrom(...SUBS), { nil: undefined }),
  type: fc.option(fc.constantFrom('bill', 'contract'), { nil: undefined }),
  minDate: fc.option(day.filter((d) => d !== null), { nil: undefined }),
  maxDate: fc.option(day.filter((d) => d !== null), { nil: undefined }),
  duplicates: fc.boolean(),
  hideDeletedSubscriptions: fc.boolean(),
  offset: fc.integer({ min: 0, max: 40 }),
});

async function apply(o: Op) {
  const x = db.db;
  if (o.kind === 'upsert') {
    await x.execute(sql`insert into subscriptions (id, connection_id, user_id) select s, 1, ${USER} from unnest(${`{${SUBS.join(',')}}`}::bigint[]) s on conflict do nothing`);
    // One statement, as a sync makes: new rows and changed ones together.
    await x.execute(sql`
      insert into documents (id, subscription_id, user_id, type, date, duplicate_reason)
      select id, sub, ${USER}, type, date, case when dup then 'file' end
      from jsonb_to_recordset(${JSON.stringify(o.docs)}::jsonb) as j(id bigint, sub bigint, type text, date date, dup boolean)
      on conflict (id) do update set subscription_id = excluded.subscription_id, type = excluded.type, date = excluded.date,
        duplicate_reason = excluded.duplicate_reason`);
  } else if (o.kind === 'delete') {
    await x.execute(sql`delete from documents where id = any(${`{${[0, ...o.ids].join(',')}}`}::bigint[])`);
  } else if (o.kind === 'dropSubscription') {
    await x.execute(sql`delete from subscriptions where id = ${o.sub}`);
  } else {
    await x.execute(sql`update subscriptions set deleted = ${o.deleted ? sql`now()` : sql`null`} where id = ${o.sub}`);
  }
}

/** The same totals by counting every matching document. */
async function counted(f: TotalsFilter) {
  const [row] = await db.db.execute<{ total: number; first: string | null; last: string | null }>(sql`
    select count(*)::int as total, min(d.date)::text as first, max(d.date)::text as last
    from documents d join subscriptions s on s.id = d.subscription_id where ${matches(f)}`);
  return row;
}

/** One page of the matches, newest first; with `before`, only those dated before it. */
async function page(f: TotalsFilter, offset: number, before?: string) {
  const rows = await db.db.execute<{ id: number }>(sql`
    select d.id::int as id from documents d join subscriptions s on s.id = d.subscription_id
    where ${matches(f)} and (${before ?? null}::date is null or d.date < ${before ?? null}::date)
    order by d.date desc nulls last, d.id desc limit 5 offset ${offset}`);
  return rows.map((r) => r.id);
}

function matches(f: TotalsFilter) {
  return sql`d.user_id = ${f.userId}
    and (${f.subscriptionId ?? null}::bigint is null or d.subscription_id = ${f.subscriptionId ?? null})
    and (${f.type ?? null}::text is null or d.type = ${f.type ?? null})
    and (${f.minDate ?? null}::date is null or d.date >= ${f.minDate ?? null}::date)
    and (${f.maxDate ?? null}::date is null or d.date <= ${f.maxDate ?? null}::date)
    and (not ${f.duplicates} or d.duplicate_reason is not null)
    and (not ${f.hideDeletedSubscriptions} or s.deleted is null)`;
}

it('list totals from the month buckets equal a count of the documents, and deep pages skip whole months to the same page, after any changes and for any filter', async () => {
  await db.db.execute(sql`insert into users (id) values (${USER})`);
  await db.db.execute(sql`insert into connections (id, user_id) values (1, ${USER})`);
  await fc.assert(
    fc.asyncProperty(fc.array(op, { minLength: 1, maxLength: 8 }), fc.array(filter, { minLength: 1, maxLength: 6 }), async (ops, filters) => {
      await db.db.execute(sql`delete from subscriptions`);
      for (const o of ops) await apply(o);
      for (const { offset, ...f } of filters) {
        const tf = { userId: USER, ...f };
        expect(await documentTotals(db.db, tf)).toEqual(await counted(tf));
        // A deep page that skips whole months is the page an OFFSET walk finds.
        const skip = await wholeMonthsBefore(db.db, tf, { offset, limit: 5 }, 0);
        if (skip) {
          expect(skip.skipped).toBeLessThanOrEqual(offset);
          expect(await page(tf, offset - skip.skipped, skip.before)).toEqual(await page(tf, offset));
        }
      }
      // No bucket outlives its documents.
      const [{ n }] = await db.db.execute<{ n: number }>(sql`select count(*)::int as n from document_months where n <= 0`);
      expect(n).toBe(0);
    }),
    { numRuns: 60 },
  );
}, 120_000);
