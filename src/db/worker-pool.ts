import pg from 'pg';
import type { Logger } from '../logger.js';

/**
 * The pg pool of one graphile-worker runner, made here rather than by graphile-worker so that
 * its error listeners outlive the runner. graphile-worker takes the listeners it installs off
 * when it releases a runner, while the pool's clients may still be closing: a client that
 * failed just then (PostgreSQL going away: `57P01 terminating connection`) emitted 'error'
 * with no listener, and Node turned that into an uncaught exception that ended the service
 * (test/faults/database-restart). pg already drops a failed client from its pool and fails
 * the query that used it; these listeners only keep the error an event. The owner ends the
 * pool once its runner has stopped (graphile-worker does not end a pool it was given).
 */
export function openWorkerPool(databaseUrl: string, log: Logger): pg.Pool {
  const pool = new pg.Pool({
    connectionString: databaseUrl,
    // graphile-worker's own default (maxPoolSize).
    max: 10,
    // A connect that hangs (a half-open network) fails and is retried, instead of holding a slot.
    connectionTimeoutMillis: 10_000,
  });
  const logError = (err: Error) => log.warn({ code: (err as { code?: string }).code, reason: err.message }, 'database client of a worker pool failed; the pool replaces it');
  pool.on('error', logError);
  pool.on('connect', (client) => client.on('error', logError));
  return pool;
}
