import { hostname } from 'node:os';
import postgres from 'postgres';
import type { Logger } from '../logger.js';

/**
 * Jobs of a worker process that died (SIGKILL, an OOM kill, a lost machine) stay locked by
 * its pools until graphile-worker frees them, 4 hours later. graphile-worker leaves it to the
 * application to notice sooner, with a heartbeat and `force_unlock_workers`; this is that.
 *
 * Every tick (WORKER_HEARTBEAT_S) each worker process
 * 1. refreshes the `worker_heartbeats` row of each of its running pools (a pool's id is the
 *    `locked_by` of the jobs it runs), in the database's clock;
 * 2. sweeps: the pools that hold a job (or a named queue) locked and whose heartbeat is older
 *    than WORKER_DEAD_AFTER_S — or that have no heartbeat row and a lock older than that (a
 *    process that died before its first beat) — are dead: their jobs are released with
 *    `graphile_worker.force_unlock_workers` and run again by a living pool, and their rows go.
 *    A process sweeps only once its own heartbeat has gone through for WORKER_DEAD_AFTER_S
 *    without a failure: after a database outage every heartbeat is old, and the living
 *    processes must have had the time to beat again before anyone judges them.
 *
 * It has a connection of its own (one, `max: 1`, a short connect timeout): a heartbeat never
 * waits behind the service's queries, and during a database outage it takes none of their
 * connections. One timer per process; a tick that is still running when the next is due
 * makes that one skip; a tick that hangs is abandoned with its connection. Every error is
 * caught and logged (a warning, its code only): liveness never throws, and closing it takes
 * at most a few seconds whatever the database does.
 */
export interface Liveness {
  /** Beat for this pool from now on (its id is graphile-worker's `locked_by`). */
  add(workerId: string, pool: string): void;
  /** Stop beating for this pool and delete its row: it has stopped, or its jobs were released. */
  remove(workerId: string): void;
  /** Run a tick now (skipped if one is running). */
  beat(): void;
  /** Stop the timer, delete the rows of this process's pools, close the connection. Never throws. */
  close(): Promise<void>;
}

export interface LivenessOptions {
  heartbeatS: number;
  deadAfterS: number;
}

const CONNECT_TIMEOUT_S = 5;
const STATEMENT_TIMEOUT_MS = 5_000;
/** A tick longer than this (connect, then at most three statements) is abandoned, its connection dropped. */
const TICK_DEADLINE_MS = 15_000;
/** close(): how long the last tick and the deletion of this process's rows may take. */
const CLOSE_BUDGET_MS = 2_000;

export function startLiveness(databaseUrl: string, opts: LivenessOptions, parentLog: Logger): Liveness {
  const log = parentLog.child({ component: 'liveness' });
  const processName = `${hostname()}:${process.pid}`;
  const open = () =>
    postgres(databaseUrl, {
      max: 1,
      connect_timeout: CONNECT_TIMEOUT_S,
      // Kept open between two beats, closed if the beats stop.
      idle_timeout: Math.max(30, 2 * opts.heartbeatS),
      onnotice: () => {},
      connection: { application_name: 'docrelay-liveness', statement_timeout: STATEMENT_TIMEOUT_MS },
    });
  let sql = open();
  const drop = (client: postgres.Sql) => void client.end({ timeout: 0 }).catch(() => {});

  const alive = new Map<string, string>(); // pool id → pool name
  const gone = new Set<string>(); // rows to delete
  let closed = false;
  let running: Promise<void> | undefined;
  /** performance.now() of the first tick of the current run of ticks that went through. */
  let healthySince: number | undefined;

  const warn = (e: unknown, step: string) => {
    const err = e as { code?: unknown; errno?: unknown } | null;
    // The code only: a driver's message may quote what was sent.
    log.warn({ step, code: typeof err?.code === 'string' ? err.code : undefined }, 'worker heartbeat failed; retrying at the next beat');
  };

  const heartbeat = async (db: postgres.Sql) => {
    if (gone.size > 0) {
      const ids = [...gone];
      await db`delete from worker_heartbeats where worker_id = any(${ids}::text[])`;
      for (const id of ids) gone.delete(id);
    }
    if (alive.size === 0) return;
    const ids = [...alive.keys()];
    const pools = ids.map((id) => alive.get(id)!);
    await db`
      insert into worker_heartbeats (worker_id, pool, process)
      select id, pool, ${processName} from unnest(${ids}::text[], ${pools}::text[]) as t(id, pool)
      on conflict (worker_id) do update set seen_at = now()`;
  };

  const sweep = async (db: postgres.Sql) => {
    const own = [...alive.keys()];
    const dead = await db<{ worker_id: string; jobs: number }[]>`
      with holders as (
        select locked_by, min(locked_at) as since, count(*)::int as jobs
          from graphile_worker._private_jobs where locked_by is not null group by locked_by
        union all
        select locked_by, min(locked_at), 0 from graphile_worker._private_job_queues where locked_by is not null group by locked_by
      )
      select h.locked_by as worker_id, sum(h.jobs)::int as jobs
        from holders h left join worker_heartbeats w on w.worker_id = h.locked_by
       where h.locked_by <> all(${own}::text[])
         and coalesce(w.seen_at, h.since) < now() - make_interval(secs => ${opts.deadAfterS})
       group by h.locked_by`;
    if (dead.length > 0) {
      const ids = dead.map((d) => d.worker_id);
      await db`select graphile_worker.force_unlock_workers(${ids}::text[])`;
      log.warn(
        { workers: ids, jobs: dead.reduce((n, d) => n + d.jobs, 0), deadAfterS: opts.deadAfterS },
        'released the jobs of worker pools whose heartbeat stopped',
      );
    }
    // The rows of pools that died: released above, or holding nothing.
    await db`delete from worker_heartbeats where seen_at < now() - make_interval(secs => ${opts.deadAfterS}) and worker_id <> all(${own}::text[])`;
  };

  const tick = async () => {
    const db = sql;
    let step = 'heartbeat';
    let timer: NodeJS.Timeout | undefined;
    let abandoned = false;
    const work = (async () => {
      await heartbeat(db);
      if (abandoned) return;
      const now = performance.now();
      healthySince ??= now;
      if (now - healthySince >= opts.deadAfterS * 1000) {
        step = 'sweep';
        await sweep(db);
      }
    })();
    work.catch(() => {}); // its outcome is read below, or abandoned
    const deadline = new Promise<never>((_, reject) => {
      timer = setTimeout(() => reject(Object.assign(new Error('heartbeat timed out'), { code: 'TIMEOUT' })), TICK_DEADLINE_MS);
    });
    try {
      await Promise.race([work, deadline]);
    } catch (e) {
      abandoned = true;
      healthySince = undefined;
      warn(e, step);
      if ((e as { code?: unknown }).code === 'TIMEOUT' && sql === db) {
        // A connection that hangs (a network that drops packets) is left behind.
        sql = open();
        drop(db);
      }
    } finally {
      clearTimeout(timer);
    }
  };

  const beat = () => {
    if (closed || running) return;
    running = tick()
      .catch(() => {})
      .finally(() => {
        running = undefined;
      });
  };
  const interval = setInterval(beat, opts.heartbeatS * 1000);
  interval.unref();

  return {
    add(workerId, pool) {
      gone.delete(workerId);
      alive.set(workerId, pool);
    },
    remove(workerId) {
      if (alive.delete(workerId)) gone.add(workerId);
    },
    beat,
    async close() {
      if (closed) return;
      closed = true;
      clearInterval(interval);
      const budget = <T>(p: Promise<T>) => {
        let timer: NodeJS.Timeout | undefined;
        return Promise.race([p, new Promise<void>((resolve) => (timer = setTimeout(resolve, CLOSE_BUDGET_MS)))]).finally(() => clearTimeout(timer));
      };
      await budget(running ?? Promise.resolve());
      const ids = [...alive.keys(), ...gone];
      alive.clear();
      gone.clear();
      if (ids.length > 0) {
        const deleted = (async () => {
          try {
            await sql`delete from worker_heartbeats where worker_id = any(${ids}::text[])`;
          } catch (e) {
            warn(e, 'close');
          }
        })();
        await budget(deleted);
      }
      // Whatever is still pending (the database is away) is abandoned.
      await budget(sql.end({ timeout: 0 }).catch(() => {}));
    },
  };
}
