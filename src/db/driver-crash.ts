import type { Logger } from '../logger.js';

/**
 * postgres.js 3.4.9 can throw from a `setImmediate` after PostgreSQL closed the socket
 * under a pending write ("Cannot read properties of null (reading 'write')" in
 * `nextWrite`; porsager/postgres issues 1154 and 1208, fix not released). Thrown there,
 * it escapes every await and would take the whole service down on a database restart,
 * although the driver has already failed the query with CONNECTION_CLOSED and reconnects
 * by itself. That one exception is logged and survived; any other uncaught exception
 * still ends the process, as Node's default does.
 */
export function surviveDriverSocketRace(log: Logger): void {
  process.on('uncaughtException', (err) => {
    if (isDriverSocketRace(err)) {
      log.warn({ code: 'CONNECTION_CLOSED' }, 'database connection closed under a pending write; the driver reconnects');
      return;
    }
    if (isReleasedPoolClientError(err)) {
      log.warn('a database client of a stopped worker pool failed after its pool let go of it; it is gone');
      return;
    }
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
}

export function isDriverSocketRace(err: unknown): boolean {
  return (
    err instanceof TypeError &&
    /reading 'write'/.test(err.message) &&
    /nextWrite/.test(err.stack ?? '') &&
    /postgres[\\/]src[\\/]connection\.js/.test(err.stack ?? '')
  );
}

/**
 * graphile-worker takes its error listeners off a pool it releases (lib.js, releasers) while
 * the pool's clients may still be closing: when PostgreSQL goes away just then — the
 * supervisor in worker.ts stopping a pool that failed during an outage — a client's error
 * is emitted with no listener, and Node throws it (ERR_UNHANDLED_ERROR, the pg client as its
 * context; seen in test/faults/database-restart). That client is already out of any pool
 * in use: nothing is lost by letting it go.
 */
export function isReleasedPoolClientError(err: unknown): boolean {
  const e = err as { code?: unknown; context?: unknown } | null;
  const client = e?.context as Record<string, unknown> | undefined;
  return (
    e?.code === 'ERR_UNHANDLED_ERROR' &&
    typeof client === 'object' &&
    client !== null &&
    'processID' in client &&
    'connectionParameters' in client
  );
}
