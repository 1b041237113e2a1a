import type { SQL } from 'drizzle-orm';
import { PgDialect } from 'drizzle-orm/pg-core';
import type { PostgresJsSession } from 'drizzle-orm/postgres-js';
import type postgres from 'postgres';
import type { Tx } from './client.js';
import { redactQueryError } from './redact.js';

const dialect = new PgDialect();

/**
 * `tx.execute(query)` as a named prepared statement of the connection, for a hot statement
 * whose text never changes (its lists are array parameters) and whose plan does not depend
 * on how large its tables are: lookups by primary key, a function call.
 *
 * drizzle sends every statement unnamed, and postgres.js then asks PostgreSQL for the
 * parameter types of an unnamed statement with parameters before binding it: two round
 * trips, and a parse and a plan, each time. Named, it is described once per connection, and
 * after five runs PostgreSQL keeps a generic plan. That plan is made once, for the sizes the
 * tables had then; hence the second condition above (a scan that suits a small table would
 * stay when it has grown).
 */
export async function executePrepared<T extends Record<string, unknown>>(tx: Tx, query: SQL): Promise<T[]> {
  const client = (tx._.session as unknown as PostgresJsSession<postgres.Sql, Record<string, never>, never>).client;
  const { sql, params } = dialect.sqlToQuery(query);
  try {
    return (await client.unsafe(sql, params as postgres.ParameterOrJSON<never>[], { prepare: true })) as unknown as T[];
  } catch (e) {
    // As drizzle's own queries do (db/redact.ts): no bound value leaves with the error.
    throw redactQueryError(e);
  }
}
