import fc from 'fast-check';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sqlColumn, type ColumnType, type ColumnValue } from '../src/db/arrays.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';

// A column sent as one array literal (db/arrays.ts) comes back from unnest element for
// element, nulls in place, whatever its values hold: the joined fast path (a list of one
// kind with nothing to escape) and the element-by-element one alike.
let db: TestDatabase;
beforeAll(async () => {
  db = await createTestDatabase();
});
afterAll(async () => {
  await db.drop();
});

async function roundTrip(values: ColumnValue[], type: ColumnType): Promise<unknown[]> {
  const rows = await db.db.execute<{ v: unknown }>(sql`
    select (case when x is null then null else x::text end) as v from unnest(${sqlColumn(values, type)}) with ordinality as t(x, n) order by n`);
  return rows.map((r) => r.v);
}

const text = fc.string({ unit: fc.constantFrom('a', ' ', ',', '"', '\\', '{', '}', 'é', '€', 'N', 'U', 'L'), maxLength: 6 }).filter((s) => !s.includes('\u0000'));
const cases: [ColumnType, fc.Arbitrary<ColumnValue>, (v: ColumnValue) => unknown][] = [
  ['text', fc.oneof(text, fc.constantFrom('NULL', 'null', '', ' x ')), (v) => v],
  ['bigint', fc.oneof(fc.integer({ min: -(2 ** 31), max: 2 ** 31 }), fc.constant(2 ** 53 - 1)), (v) => String(v)],
  ['float8', fc.double({ noNaN: true, noDefaultInfinity: true }).map((x) => (Object.is(x, -0) ? 0 : x)), (v) => v],
  ['boolean', fc.boolean(), (v) => (v ? 'true' : 'false')],
];

it.each(cases)('%s: every element comes back in its place, with and without nulls', async (type, value, expected) => {
  await fc.assert(
    fc.asyncProperty(fc.array(value, { maxLength: 8 }), fc.boolean(), async (values, withNulls) => {
      const sent = withNulls ? values.flatMap((v, i) => (i % 2 ? [v, null] : [v])) : values;
      const back = await roundTrip(sent, type);
      if (type === 'float8') expect(back.map((v) => (v === null ? null : Number(v)))).toEqual(sent);
      else expect(back).toEqual(sent.map((v) => (v === null ? null : expected(v))));
    }),
    { numRuns: 60 },
  );
});

it('dates and instants', async () => {
  expect(await roundTrip(['2026-11-01', null, '2024-02-29'], 'date')).toEqual(['2026-11-01', null, '2024-02-29']);
  const at = new Date('2026-11-20T08:00:00.123Z');
  const back = await roundTrip([at, null], 'timestamptz');
  expect(new Date(String(back[0])).getTime()).toBe(at.getTime());
  expect(back[1]).toBeNull();
});
