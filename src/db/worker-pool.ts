import type { WorkerEvents } from 'graphile-worker';
import pg, { type Notification, type PoolClient } from 'pg';
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

/**
 * Makes a graphile-worker pool wake for new jobs of its own tasks only: once graphile-worker
 * has its LISTEN connection (`pool:listen:success`, just before it sends `LISTEN
 * "jobs:insert"` on it), that connection stops listening to `jobs:insert` and listens to
 * `channel` instead, whose notifications nudge the pool as graphile-worker's own would
 * (jobs/pools.ts says who notifies it). Polling is unchanged: a job that becomes due later
 * (a retry, a released lock) is found by the poll, as before.
 */
export function listenToOwnChannel(events: WorkerEvents, channel: string): void {
  const quoted = `"${channel.replaceAll('"', '""')}"`;
  const attached = new WeakMap<PoolClient, (m: Notification) => void>();
  events.on('pool:listen:success', ({ client, workerPool }) => {
    const onNotification = (m: Notification) => {
      if (m.channel !== channel) return;
      let count = 1;
      try {
        count = Number((JSON.parse(m.payload ?? '{}') as { count?: unknown }).count ?? 1) || 1;
      } catch {
        // Not ours after all: a nudge too many costs one job fetch.
      }
      workerPool.nudge(count);
    };
    attached.set(client, onNotification);
    client.on('notification', onNotification);
    // Queued after graphile-worker's LISTEN, which it sends right after this event: a
    // client runs its queries in order.
    queueMicrotask(() => {
      client.query(`UNLISTEN "jobs:insert"; LISTEN ${quoted};`).catch(() => {
        // The client failed: graphile-worker releases it and listens again on a new one.
      });
    });
  });
  events.on('pool:listen:release', ({ client }) => {
    const onNotification = attached.get(client);
    if (!onNotification) return;
    attached.delete(client);
    client.off('notification', onNotification);
    // graphile-worker unlistens its own channels only, and the client goes back to the pool.
    client.query(`UNLISTEN ${quoted};`).catch(() => {});
  });
}
