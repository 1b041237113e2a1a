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

export function openDatabase(url: string, options: { max?: number } = {}): Database {
  const sql = postgres(url, {
    max: options.max ?? 10,
    onnotice: () => {},
    transform: { undefined: null },
    // Statements are prepared (db/prepared.ts) to save a round trip, not to reuse plans.
    connection: { plan_cache_mode: 'force_custom_plan' },
  });
  const db = drizzle(preparingStatements(sql), { schema, casing: 'snake_case' });
  return { db, sql, close: () => sql.end({ timeout: 5 }) };
}
