import { run } from 'graphile-worker';
import postgres from 'postgres';
import { afterAll, expect, inject, it } from 'vitest';
import { openWorkerPool } from '../src/db/worker-pool.js';
import { createLogger } from '../src/logger.js';
import { withDatabase } from './helpers/global-setup.js';

// graphile-worker takes its error listeners off a runner's pool when it releases the runner;
// a client of that pool failing afterwards (PostgreSQL going away) must stay an event, not
// an uncaught exception that ends the service.
const url = withDatabase(inject('pgServerUrl'), inject('pgTemplate'));
const admin = postgres(url, { max: 1, onnotice: () => {} });
afterAll(() => admin.end());

it('keeps a client error of a stopped runner\'s pool from becoming an uncaught exception', async () => {
  const uncaught: unknown[] = [];
  const onUncaught = (e: unknown) => void uncaught.push(e);
  process.on('uncaughtException', onUncaught);
  const pool = openWorkerPool(url, createLogger('silent'));
  try {
    const runner = await run({ pgPool: pool, taskList: { noop: async () => {} }, noHandleSignals: true, pollInterval: 100, logger: undefined });
    await runner.stop();
    // A client left idle in the pool, whose backend then goes away: pg drops it from the pool
    // ('remove') and emits its error on the pool, with nobody else listening any more.
    const client = await pool.connect();
    const [{ pid }] = (await client.query('select pg_backend_pid() as pid')).rows as { pid: number }[];
    client.release();
    const removed = new Promise((resolve) => pool.once('remove', resolve));
    await admin`select pg_terminate_backend(${pid})`;
    await removed;
    await new Promise((r) => setImmediate(r));
    expect(uncaught).toEqual([]);
  } finally {
    process.off('uncaughtException', onUncaught);
    await pool.end();
  }
});
