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
