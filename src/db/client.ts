import { drizzle, type PostgresJsDatabase } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';
import { preparingStatements } from './prepared.js';
import { redactQueryErrors } from './redact.js';
import * as schema from './schema/index.js';

// Errors of failed queries leave this layer without the values bound to them (db/redact.ts).
redactQueryErrors();

export type Db = PostgresJsDatabase<typeof schema>;
/** A database handle or an open transaction: what any query helper takes. */
export type Tx = Parameters<Parameters<Db['transaction']>[0]>[0] | Db;

export interface Database {
  db: Db;
  sql: postgres.Sql;
  close(): Promise<void>;
}

/**
 * Seconds a closed connection waits before it connects again, after `retries` failed
 * attempts (postgres.js counts them for the whole pool). postgres.js's own delay grows to
 * 20 s, and a query waits it out before it even tries: during a database outage a webhook
 * then got its 503 after 10–20 s — past the patience of an aggregator's HTTP client, and
 * a test of the outage (test/faults/database-restart) timed out on a loaded machine. Capped at
 * one second, a request during an outage is refused within about a second, and the service
 * is back within a second of the database; a refused connection costs the server nothing.
 */
export const reconnectDelayS = (retries: number) => (0.5 + Math.random() / 2) * Math.min(3 ** retries / 100, 1);

export function openDatabase(url: string, options: { max?: number } = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    transform: { undefined: null },
    // Statements are prepared (db/prepared.ts) to save a round trip, not to reuse plans.
    connection: { plan_cache_mode: 'force_custom_plan' },
    backoff: reconnectDelayS,
  });
  const db = drizzle(preparingStatements(sql), { schema, casing: 'snake_case' });
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}
