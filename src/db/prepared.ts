import type postgres from 'postgres';

/**
 * The postgres.js client drizzle is given, made to run every statement that has parameters
 * as a prepared statement.
 *
 * drizzle asks postgres.js for an unprepared statement unless a query was `.prepare()`d, and
 * postgres.js then sends a statement with parameters in two round trips: Parse/Describe
 * first, to learn the parameters' types, then Bind/Execute on the answer — and nothing
 * queued behind it on the connection goes out meanwhile. Prepared, a statement is described
 * once per connection (postgres.js keeps it by its text and types) and then runs in one
 * round trip, pipelined with its neighbours. On this 2-core machine a round trip is mostly
 * a wait for the CPU at each wake-up (README "Performance").
 *
 * Statements without parameters are left as they are: they already go in one round trip,
 * and those whose text carries their values would each be kept by the connection for
 * nothing. Plans stay per execution, as unprepared: the connections run with
 * `plan_cache_mode = force_custom_plan` (db/client.ts), so a prepared statement never
 * switches to a generic plan that ignores its values (a page's limit, a user's row count).
 *
 * Transactions, savepoints and reserved connections hand drizzle clients of their own;
 * those are wrapped the same way.
 */
export function preparingStatements<T extends postgres.Sql>(client: T): T {
  return new Proxy(client, {
    get(target, key, receiver) {
      const value = Reflect.get(target, key, receiver);
      if (typeof value !== 'function') return value;
      switch (key) {
        case 'unsafe':
          return (query: string, params?: unknown[], options?: postgres.UnsafeQueryOptions) =>
            target.unsafe(query, params as never, params && params.length > 0 ? { ...options, prepare: true } : options);
        case 'begin':
        case 'savepoint':
          // (fn) or (name or options, fn): the callback is the last argument.
          return (...args: unknown[]) => {
            const fn = args.at(-1) as (sql: postgres.Sql) => unknown;
            return (value as (...a: unknown[]) => unknown).apply(target, [...args.slice(0, -1), (sql: postgres.Sql) => fn(preparingStatements(sql))]);
          };
        case 'reserve':
          return async () => preparingStatements(await (value as () => Promise<postgres.ReservedSql>).apply(target));
        default:
          return value;
      }
    },
  });
}
