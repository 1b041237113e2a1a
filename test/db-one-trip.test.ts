import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/client.js';
import { readWithSettings } from '../src/db/one-trip.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { waitUntil } from './helpers/receiver.js';

// One connection: what a read leaves behind is what the next query on the pool meets.
let clone: TestDatabase;
let database: Database;
let db: Database['db'];
beforeAll(async () => {
  clone = await createTestDatabase();
  database = openDatabase(clone.url, { max: 1 });
  db = database.db;
});
afterAll(async () => {
  await database.close();
  await clone.drop();
});

const bitmapScan = async () => ((await db.execute<{ v: string }>(sql`select current_setting('enable_bitmapscan') as v`))[0]).v;

it('runs the read under its settings, and leaves none of them on the connection', async () => {
  const rows = await readWithSettings(db, { enable_bitmapscan: 'off', work_mem: '1MB' }, (tx) =>
    tx.execute<{ bitmap: string; mem: string }>(sql`select current_setting('enable_bitmapscan') as bitmap, current_setting('work_mem') as mem`));
  expect([...rows]).toEqual([{ bitmap: 'off', mem: '1MB' }]);
  expect(await bitmapScan()).toBe('on');
});

it('rejects with the read\'s error, and the connection is back out of any transaction, settings undone', async () => {
  await expect(readWithSettings(db, { enable_bitmapscan: 'off' }, (tx) => tx.execute(sql`select 1 / 0`))).rejects.toThrow(/division by zero/);
  // A connection left in the aborted transaction would refuse this ("current transaction is aborted").
  expect(await bitmapScan()).toBe('on');
});

it('is read only: a write in it is refused and nothing is written', async () => {
  await expect(readWithSettings(db, {}, (tx) => tx.execute(sql`insert into users (id) values (4242)`))).rejects.toThrow(/read-only/);
  expect([...(await db.execute(sql`select id from users where id = 4242`))]).toEqual([]);
});

it('rejects when its connection is lost under the read, instead of waiting for ever on the commit queued behind it, and the pool goes on', async () => {
  const read = readWithSettings(db, { work_mem: '2MB' }, (tx) => tx.execute(sql`select pg_sleep(60) as one_trip_lost, ${1}::int as x`));
  read.catch(() => {});
  // The server ends the session while the read runs (an operator, a failover, a restart).
  const admin = openDatabase(clone.url, { max: 1 });
  try {
    await waitUntil(async () => {
      const [r] = await admin.db.execute<{ n: number }>(sql`
        select count(pg_terminate_backend(pid))::int as n from pg_stat_activity
        where query like '%one_trip_lost%' and state = 'active' and pid <> pg_backend_pid()`);
      return r.n > 0;
    }, 20_000, 'the read to run');
  } finally {
    await admin.close();
  }
  await expect(read).rejects.toThrow();
  // The pool reconnects for the next query, out of any transaction.
  expect(await bitmapScan()).toBe('on');
});
