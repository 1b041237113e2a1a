import postgres from 'postgres';
import { afterAll, beforeAll, expect, inject, it } from 'vitest';
import { openDatabase, type Database } from '../src/db/client.js';
import { withDatabase } from './helpers/global-setup.js';

// A database connection that dies under a transaction must leave the pool usable. postgres.js
// 3.4.9 writes the transaction's ROLLBACK to the closed socket from a setImmediate (an
// uncaught TypeError) and then never flushes that connection again: every later connect on
// it ended in CONNECT_TIMEOUT after 30 s — what made files wait for minutes after a
// database restart in test/faults/database-restart. vendor/postgres carries the fix.
const url = withDatabase(inject('pgServerUrl'), 'postgres');
let database: Database;
let admin: postgres.Sql;
const uncaught: unknown[] = [];
const onUncaught = (e: unknown) => void uncaught.push(e);

beforeAll(() => {
  process.on('uncaughtException', onUncaught);
  // One connection, so that the query after the loss must reuse the one that was lost.
  database = openDatabase(url, { max: 1 });
  admin = postgres(url, { max: 1, onnotice: () => {} });
});

afterAll(async () => {
  process.off('uncaughtException', onUncaught);
  await database.close();
  await admin.end();
});

it('answers the next query on a connection whose backend died inside a transaction', async () => {
  for (let round = 0; round < 3; round++) {
    let pid: number | undefined;
    const tx = database.sql.begin(async (t) => {
      [{ pid }] = await t<{ pid: number }[]>`select pg_backend_pid() as pid`;
      await t`select pg_sleep(30)`;
    });
    const settled = tx.then(() => 'committed', (e: { code?: string }) => e.code ?? 'error');
    while (pid === undefined) await new Promise((r) => setTimeout(r, 10));
    await admin`select pg_terminate_backend(${pid})`;
    expect(await settled).not.toBe('committed');

    const started = Date.now();
    const [{ one }] = await database.sql<{ one: number }[]>`select 1 as one`;
    expect(one).toBe(1);
    // Reconnecting on loopback takes milliseconds; a stuck connection waits out connect_timeout.
    expect(Date.now() - started).toBeLessThan(5_000);
  }
  expect(uncaught).toEqual([]);
}, 120_000);
