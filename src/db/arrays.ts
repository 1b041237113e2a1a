import { sql, type SQL } from 'drizzle-orm';

/**
 * A list as one bound parameter of type `text[]` or `bigint[]`, for `= any(…)` and
 * `unnest(…)`: a query takes a list of any length with one placeholder, where drizzle's
 * `inArray` makes one per element. Every element is quoted and escaped in the array
 * literal, so a comma, a brace or a quote inside a value stays inside that value.
 */
export function sqlArray(values: readonly (string | number)[], type: 'text' | 'bigint'): SQL {
  const literal = `{${values.map((v) => `"${String(v).replace(/[\\"]/g, '\\$&')}"`).join(',')}}`;
  return sql`${literal}::${sql.raw(type)}[]`;
}
