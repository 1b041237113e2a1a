import { randomBytes } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';

/**
 * A text value written into the statement as a dollar-quoted literal rather than bound as a
 * parameter, for the statements of the delivery path (recording an event, a delivery round).
 *
 * Why: drizzle's `execute` never prepares a statement, and postgres.js then sends every
 * statement that has parameters twice — a Parse/Describe first, to learn the parameters'
 * types, and only on its answer the Parse/Bind/Execute — two round trips and two parses
 * each. A statement without parameters goes as one simple query: one round trip. On the
 * streamed-notification bench, socket writes were the largest part of the process's CPU
 * profile, and the recording statement's first round trip showed in pg_stat_activity as
 * `Client:ClientRead` while active (the server waiting for the Bind after the Describe).
 *
 * Safe for any text: the quote's tag is random and checked to be absent from the text, so
 * nothing inside can end the literal. Only for text free of U+0000 (as any PostgreSQL text).
 */
export function textLiteral(text: string): SQL {
  let tag: string;
  do tag = `$v${randomBytes(6).toString('hex')}$`;
  while (text.includes(tag));
  return sql.raw(`${tag}${text}${tag}`);
}

/** A list of texts as a `text[]` literal (each element a text literal). */
export const textArrayLiteral = (values: readonly string[]): SQL =>
  values.length === 0 ? sql.raw(`'{}'::text[]`) : sql`array[${sql.join(values.map(textLiteral), sql`, `)}]::text[]`;

/** A number written into the statement (finite integers only: never a value from outside unchecked). */
export function intLiteral(n: number): SQL {
  if (!Number.isSafeInteger(n)) throw new Error(`not an integer: ${n}`);
  return sql.raw(String(n));
}
