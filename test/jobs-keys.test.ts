import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { sqlArray } from '../src/db/arrays.js';
import { enqueue } from '../src/jobs/enqueue.js';
import { captchaJobKey, removeJobs } from '../src/jobs/keys.js';
import { createTestContext, type TestContext } from './helpers/context.js';

// A list travels as one array parameter: any value, even one with the array literal's own
// syntax in it, arrives as itself.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

it('sqlArray passes values with commas, quotes, braces, backslashes and NULL as they are', async () => {
  const values = ['a,b', 'say "hi"', '{x}', 'back\\slash', 'NULL', '', 'plain'];
  const rows = await ctx.deps.db.execute<{ v: string | null }>(sql`select unnest(${sqlArray(values, 'text')}) as v`);
  expect(rows.map((r) => r.v)).toEqual(values);
  const ids = await ctx.deps.db.execute<{ v: string }>(sql`select unnest(${sqlArray([1, 9007199254740991], 'bigint')})::text as v`);
  expect(ids.map((r) => r.v)).toEqual(['1', '9007199254740991']);
  const none = await ctx.deps.db.execute<{ n: number }>(sql`select cardinality(${sqlArray([], 'text')})::int as n`);
  expect(none[0].n).toBe(0);
});

it('removeJobs cancels exactly the jobs of the given keys', async () => {
  for (const id of [1, 2, 3]) await enqueue(ctx.deps.db, 'captcha_resync', { connectionId: id }, { jobKey: captchaJobKey(id) });
  await removeJobs(ctx.deps.db, [captchaJobKey(1), captchaJobKey(3), 'no-such-key']);
  await removeJobs(ctx.deps.db, []);
  const left = await ctx.deps.db.execute<{ key: string }>(sql`select key from graphile_worker.jobs order by key`);
  expect(left.map((r) => r.key)).toEqual([captchaJobKey(2)]);
});
