import { sql, type SQL } from 'drizzle-orm';

/**
 * A list as one bound parameter of type `text[]` or `bigint[]`, for `= any(…)` and
 * `unnest(…)`: a query takes a list of any length with one placeholder, where drizzle's
 * `inArray` makes one per element. Every string is quoted and escaped in the array
 * literal, so a comma, a brace or a quote inside a value stays inside that value.
 */
export function sqlArray(values: readonly (string | number)[], type: 'text' | 'bigint'): SQL {
  return sqlColumn(values, type);
}

export type ColumnType = 'text' | 'bigint' | 'float8' | 'boolean' | 'date' | 'timestamptz';
export type ColumnValue = string | number | boolean | Date | null;

const NEEDS_ESCAPE = /[\\"]/;

/**
 * A column of values, nulls included, as one bound parameter of an array type, for
 * `unnest(a, b, …)`: many rows go to PostgreSQL as one typed array per column, which it
 * parses at bind time far faster than the same rows as one jsonb document (a 10,000-row
 * sync: bench/ingest.ts). A null is the unquoted NULL; a string is quoted and escaped (a
 * comma, a brace or a quote stays inside its value), a Date written as its ISO instant. Numbers must be finite (the inbound schemas see to it) and strings free of
 * U+0000, which no text column holds; an undefined is taken for null, as JSON.stringify
 * took a missing field. sqlArray is this, for a list without nulls.
 */
export function sqlColumn(values: readonly ColumnValue[], type: ColumnType): SQL {
  return sql`${arrayLiteral(values)}::${sql.raw(type)}[]`;
}

/**
 * The array literal of `values`. A list of numbers only, of booleans only, or of strings
 * with nothing to escape — most columns of a large sync — is joined natively, several
 * times faster than element by element: numbers and booleans need no quotes (`42.5`,
 * `true`), and such strings only need theirs.
 */
function arrayLiteral(values: readonly ColumnValue[]): string {
  if (values.length === 0) return '{}';
  const kind = typeof values[0];
  let plain = kind === 'number' || kind === 'boolean' || kind === 'string';
  for (let i = 0; plain && i < values.length; i++) {
    const v = values[i];
    plain = typeof v === kind && (kind !== 'string' || !NEEDS_ESCAPE.test(v as string));
  }
  if (plain) return kind === 'string' ? `{"${values.join('","')}"}` : `{${values.join(',')}}`;
  const parts = new Array<string>(values.length);
  for (let i = 0; i < values.length; i++) {
    const v = values[i];
    if (v === null || v === undefined) parts[i] = 'NULL';
    else if (typeof v === 'string') parts[i] = NEEDS_ESCAPE.test(v) ? `"${v.replace(/[\\"]/g, '\\$&')}"` : `"${v}"`;
    else if (v instanceof Date) parts[i] = `"${v.toISOString()}"`;
    else parts[i] = `"${String(v)}"`;
  }
  return `{${parts.join(',')}}`;
}
