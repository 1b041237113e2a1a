import { DrizzleQueryError } from 'drizzle-orm/errors';
import { PgPreparedQuery } from 'drizzle-orm/pg-core';
import postgres from 'postgres';

/**
 * A failed query, without the values bound to it.
 *
 * drizzle's DrizzleQueryError writes every bound value into its message ("Failed query: …
 * params: …"), hence into its stack, and PostgreSQL's own error may carry values too: its
 * `detail` ("Key (secret)=(whsec_…) already exists", "Failing row contains (…)") and, for data
 * exceptions (SQLSTATE class 22), its message ('invalid input syntax for type date: "…"').
 * Those values are an endpoint's secret, a provider URL with its token, a person's bill: they
 * must never reach a log line, a job's last_error, or a response. So the error every query
 * throws is replaced at the source by this one, which keeps what an operator needs — the SQLSTATE,
 * the constraint, table and column names, and the query text with its $1 placeholders.
 */
export class QueryError extends Error {
  override name = 'QueryError';
  readonly code?: string;
  readonly constraint?: string;
  readonly table?: string;
  readonly column?: string;
  readonly query: string;

  constructor(query: string, cause: unknown) {
    const c = (cause ?? {}) as Record<string, unknown>;
    const code = typeof c.code === 'string' ? c.code : undefined;
    super(`${describeCause(c, code)}${code ? ` [${code}]` : ''}; query: ${query}`);
    this.code = code;
    this.constraint = stringOr(c.constraint_name);
    this.table = stringOr(c.table_name);
    this.column = stringOr(c.column_name);
    this.query = query;
  }
}

const stringOr = (v: unknown) => (typeof v === 'string' ? v : undefined);

/** PostgreSQL's message, less the value a data exception quotes after its colon. */
function describeCause(c: Record<string, unknown>, code: string | undefined): string {
  const message = typeof c.message === 'string' ? c.message : 'query failed';
  if (code?.startsWith('22')) {
    const colon = message.indexOf(':');
    return colon === -1 ? message : `${message.slice(0, colon)}: [value redacted]`;
  }
  return message;
}

/**
 * An error as it may be shown: a drizzle query error, or postgres.js's own (a failed COMMIT),
 * becomes a QueryError; any other error is kept.
 */
export function redactQueryError(e: unknown): unknown {
  if (e instanceof QueryError) return e;
  if (e instanceof DrizzleQueryError) return new QueryError(e.query, e.cause);
  if (e instanceof postgres.PostgresError) return new QueryError(stringOr((e as { query?: unknown }).query) ?? '(driver)', e);
  return e;
}

/**
 * Every drizzle query on PostgreSQL runs through PgPreparedQuery.queryWithCache, which wraps
 * the driver's error into a DrizzleQueryError: wrap it once more, so the error leaving the
 * database layer is already a QueryError (and the stack of the new error, taken here, holds
 * the async frames of the caller but none of the values). drizzle has no hook for this;
 * the check below makes a drizzle upgrade that renames the method fail at start, loudly.
 */
let installed = false;
export function redactQueryErrors(): void {
  if (installed) return;
  const proto = PgPreparedQuery.prototype as unknown as { queryWithCache?: (...args: unknown[]) => Promise<unknown> };
  const original = proto.queryWithCache;
  if (typeof original !== 'function') throw new Error('drizzle-orm: PgPreparedQuery.queryWithCache is gone; see src/db/redact.ts');
  proto.queryWithCache = async function (this: unknown, ...args: unknown[]) {
    try {
      return await original.apply(this, args);
    } catch (e) {
      throw redactQueryError(e);
    }
  };
  installed = true;
}
