import { PgDialect } from 'drizzle-orm/pg-core';
import { PostgresJsDatabase, PostgresJsSession } from 'drizzle-orm/postgres-js';
import type postgres from 'postgres';
import type { Db } from './client.js';

/** The pool's dialect (db/client.ts): a drizzle handle on a reserved connection needs no more. */
const dialect = new PgDialect({ casing: 'snake_case' });

/**
 * Run one read statement under transaction-local settings (`set local`) in a single round trip.
 *
 * `db.transaction` waits for `begin` before it runs the body and for the body before it
 * sends `commit`: three round trips for one statement, each a wake-up of the server and of
 * this process — on a loaded machine, where a request's latency goes (measured: bench/read.ts).
 * Here `begin`, the settings, the statement and `commit` are handed to one reserved
 * connection together, and postgres.js writes them at once: `commit` is queued the moment
 * the statement is, not after its answer. A failing statement aborts the transaction and
 * `commit` then rolls it back, so nothing of the settings outlives it; the connection is
 * released once `commit` has answered. `read` must make exactly one statement.
 */
export async function readWithSettings<T>(db: Db, settings: Record<string, string>, read: (db: Db) => PromiseLike<T>): Promise<T> {
  const pool = (db as unknown as { $client: postgres.Sql }).$client;
  const conn = await pool.reserve();
  let commit: postgres.PendingQuery<postgres.Row[]> | undefined;
  let gone = false;
  const end = () => (commit ??= conn`commit`.execute());
  try {
    // `execute()` queues a query now, in call order (awaiting it would queue it later).
    const setup = [conn`begin read only`.execute(), ...Object.entries(settings).map(([name, value]) => conn`select set_config(${name}, ${value}, true)`.execute())];
    for (const q of setup) q.catch(() => {}); // a failed setup fails the read after it: reported there
    // The statement drizzle makes goes through `unsafe`: `commit` is queued right behind it.
    const client = new Proxy(conn, {
      get: (target, key, receiver) =>
        key !== 'unsafe'
          ? Reflect.get(target, key, receiver)
          : (...args: Parameters<postgres.Sql['unsafe']>) => {
              if (commit) throw new Error('readWithSettings: one statement only');
              const q = target.unsafe(...args).execute();
              end();
              return q;
            },
    });
    const result = await read(new PostgresJsDatabase(dialect, new PostgresJsSession(client, dialect, undefined), undefined) as unknown as Db);
    await Promise.all(setup);
    return result;
  } catch (e) {
    gone = connectionGone(e);
    throw e;
  } finally {
    // A connection lost under the read never answers the `commit` queued behind it: waiting
    // for it hung the request for good. postgres.js has then taken the connection back
    // itself (to reconnect it for the next query), so it is not ours to release either.
    if (!gone) {
      await end().catch(() => {});
      conn.release();
    }
  }
}

/**
 * Whether an error says the connection itself is gone (postgres.js's own codes, a socket's,
 * or the server ending the session: 57P01–57P05), looking through the wrappers drizzle
 * and db/redact.ts put around a query's error.
 */
function connectionGone(e: unknown): boolean {
  for (let x = e as { code?: unknown; cause?: unknown } | undefined, depth = 0; x && depth < 5; x = x.cause as typeof x, depth++) {
    const code = typeof x.code === 'string' ? x.code : '';
    if (['CONNECTION_CLOSED', 'CONNECTION_DESTROYED', 'CONNECTION_ENDED', 'ECONNRESET', 'EPIPE', 'ETIMEDOUT'].includes(code) || code.startsWith('57P')) return true;
  }
  return false;
}
