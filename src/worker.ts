import { EventEmitter } from 'node:events';
import { sql } from 'drizzle-orm';
import { Logger as WorkerLogger, run, type Runner, type RunnerOptions, type Task, type TaskList, type WorkerEvents } from 'graphile-worker';
import { captchaResync } from './captcha/tasks.js';
import { redactQueryError } from './db/redact.js';
import { listenToOwnChannel, openWorkerPool } from './db/worker-pool.js';
import type { Deps } from './deps.js';
import { sweepStuckFiles } from './files/sweep.js';
import { fetchDocumentFile, fetchDocumentFiles } from './files/tasks.js';
import { renderThumbnails } from './files/thumbnail-job.js';
import { jobCatalog, type JobName } from './jobs/catalog.js';
import { poolChannel, poolTasks } from './jobs/pools.js';
import type { JobHandlerFactory } from './jobs/handler.js';
import { startLiveness, type Liveness } from './jobs/liveness.js';
import { pruneRetentionTask } from './retention/prune.js';
import { announceDocument, announceDocuments, deliverMessage, deliverMessages, publishEvent, sendDocumentEmail, sendOpsEmail, sendOpsWebhook, sweepStrandedMessages } from './notify/tasks.js';

/** The task list: one handler per catalog entry (the type makes a missing one a compile error). */
const handlers: { [N in JobName]: JobHandlerFactory<N> } = {
  fetch_document_files: fetchDocumentFiles,
  fetch_document_file: fetchDocumentFile,
  render_thumbnails: renderThumbnails,
  announce_document: announceDocument,
  announce_documents: announceDocuments,
  deliver_message: deliverMessage,
  deliver_messages: deliverMessages,
  sweep_stranded_messages: sweepStrandedMessages,
  sweep_stuck_files: sweepStuckFiles,
  publish_event: publishEvent,
  send_document_email: sendDocumentEmail,
  send_ops_webhook: sendOpsWebhook,
  send_ops_email: sendOpsEmail,
  captcha_resync: captchaResync,
  prune_retention: pruneRetentionTask,
};

export function buildTaskList(deps: Deps): TaskList {
  const list: TaskList = {};
  for (const name of Object.keys(handlers) as JobName[]) {
    const handler = (handlers[name] as JobHandlerFactory<JobName>)(deps);
    const task: Task = async (payload, helpers) => {
      // A job may come from an older release: check its payload before trusting it.
      const parsed = jobCatalog[name].safeParse(payload);
      if (!parsed.success) {
        helpers.logger.error(`dropping ${name} job ${helpers.job.id}: bad payload ${parsed.error.message}`);
        return;
      }
      // graphile-worker keeps the message as the job's last_error and logs its stack:
      // neither may hold a query's values (db/redact.ts). So for each entry of a batch.
      let entries;
      try {
        entries = await handler(parsed.data as never, helpers);
      } catch (e) {
        throw redactQueryError(e);
      }
      return entries?.map((entry) => {
        const redacted = entry.catch((e: unknown) => Promise.reject(redactQueryError(e)));
        redacted.catch(() => {}); // handled: graphile-worker reads every entry's outcome
        return redacted;
      });
    };
    list[name] = task;
  }
  return list;
}

/**
 * The worker runs three graphile-worker pools (jobs/pools.ts), each with its own slots:
 * graphile-worker's job fetch only takes jobs of the tasks in a pool's own task list
 * (`task_id = any(…)` in its get_job).
 */
type Pool = keyof typeof poolTasks | 'main';

export interface Worker {
  /**
   * Stops taking jobs and waits for the running ones to finish; past `deadlineMs`, those
   * still running are released (failed with a retryable error: graphile-worker runs them again).
   */
  stop(deadlineMs?: number): Promise<void>;
  /** The graphile-worker runners in use, by pool (a new one after a restart). */
  readonly runners: Record<Pool, Runner>;
}

export interface WorkerOptions {
  pollInterval?: number;
  /**
   * `resetLockedIntervalMs`: how often jobs locked by a dead worker (locked for over 4 h)
   * are freed; graphile-worker's default is every 8–10 min. Tests shorten it.
   */
  resetLockedIntervalMs?: number;
}

/** The supervised pools of one worker process (see poolTasks). */
export async function startWorker(deps: Deps, databaseUrl: string, opts: WorkerOptions = {}): Promise<Worker> {
  const all = buildTaskList(deps);
  const pooled = new Set<string>(Object.values(poolTasks).flat());
  const pick = (keep: (name: string) => boolean) => Object.fromEntries(Object.entries(all).filter(([name]) => keep(name)));
  const own = (names: readonly string[]) => pick((name) => names.includes(name));
  const specs: [Pool, Pick<RunnerOptions, 'concurrency' | 'taskList' | 'crontab'>][] = [
    ['files', { concurrency: deps.config.fileConcurrency, taskList: own(poolTasks.files) }],
    ['thumbnails', { concurrency: 1, taskList: own(poolTasks.thumbnails) }],
    [
      'main',
      {
        concurrency: deps.config.workerConcurrency,
        taskList: pick((name) => !pooled.has(name)),
        // Periodic tasks; graphile-worker makes sure one worker runs each tick.
        crontab: '*/5 * * * * sweep_stranded_messages\n*/5 * * * * sweep_stuck_files\n17 * * * * prune_retention',
      },
    ],
  ];
  // One heartbeat for the pools of this process, on a connection of its own (jobs/liveness.ts).
  const liveness = startLiveness(databaseUrl, deps.config.workerLiveness, deps.log);
  const started: [Pool, SupervisedRunner][] = [];
  try {
    for (const [pool, spec] of specs) started.push([pool, await superviseRunner(deps, pool, databaseUrl, opts, spec, liveness)]);
  } catch (err) {
    await Promise.all(started.map(([, r]) => r.stop()));
    await liveness.close();
    throw err;
  }
  liveness.beat();
  return {
    get runners() {
      return Object.fromEntries(started.map(([pool, r]) => [pool, r.runner])) as Record<Pool, Runner>;
    },
    stop: async (deadlineMs?: number) => {
      await Promise.all(started.map(([, r]) => r.stop(deadlineMs)));
      // The pools have let go of their jobs: their rows go (a pool still draining keeps beating).
      await liveness.close();
    },
  };
}

interface SupervisedRunner {
  readonly runner: Runner;
  stop(deadlineMs?: number): Promise<void>;
}

/**
 * One graphile-worker pool that heals by itself: a pool that failed for good (the database
 * gone for longer than graphile-worker's own retries) is replaced once the database
 * answers again, and the jobs it held locked are released at once rather than after
 * graphile-worker's 4 h.
 */
async function superviseRunner(
  deps: Deps,
  pool: Pool,
  databaseUrl: string,
  opts: WorkerOptions,
  own: Pick<RunnerOptions, 'concurrency' | 'taskList' | 'crontab'>,
  liveness: Liveness,
): Promise<SupervisedRunner> {
  const log = deps.log.child({ component: 'worker', pool });
  const logger = new WorkerLogger((scope) => (level, message, meta) => {
    const lvl = level === 'warning' ? 'warn' : level;
    (log[lvl as 'info'] ?? log.info).call(log, { scope, ...meta }, message);
  });
  // Events of this pool only: a pool's id is learnt from the 'pool:create' its run() emits.
  const events: WorkerEvents = new EventEmitter();
  const poolIds = new WeakMap<Runner, string>();
  let starting: string | undefined;
  events.on('pool:create', ({ workerPool }) => void (starting = workerPool.id));
  // The files and thumbnails pools wake for jobs of their own tasks only (jobs/pools.ts);
  // the main pool, which runs every other task, for every new job.
  if (pool !== 'main') listenToOwnChannel(events, poolChannel(pool));
  const options: RunnerOptions = {
    ...own,
    noHandleSignals: true,
    pollInterval: opts.pollInterval ?? 1000,
    logger,
    events,
    preset: {
      worker: {
        // No local queue (`localQueue.size`), though it would fetch several jobs per
        // statement and could delay fetches so that messages gather in a waiting batch job:
        // its fetch takes up to `size` jobs of one named queue at once, and a failing
        // endpoint's lane must run one request at a time (notify/deliver.ts; with it, four
        // requests hung on a slow endpoint in test/notify-delivery).
        // Batched completion and failure: graphile-worker then retries them with backoff
        // (about 5 min in all) through a database outage, instead of dropping the pool on
        // the first refused connection.
        completeJobBatchDelay: 0,
        failJobBatchDelay: 0,
        ...(opts.resetLockedIntervalMs
          ? { minResetLockedInterval: opts.resetLockedIntervalMs, maxResetLockedInterval: opts.resetLockedIntervalMs * 2 }
          : {}),
      },
    },
  };
  // Each runner has a pg pool of its own (db/worker-pool.ts), ended once the runner has stopped.
  const poolsEnded = new WeakMap<Runner, Promise<void>>();
  const start = async () => {
    const pgPool = openWorkerPool(databaseUrl, log);
    let r: Runner;
    try {
      r = await run({ ...options, pgPool });
    } catch (err) {
      void pgPool.end().catch(() => {});
      throw err;
    }
    poolsEnded.set(r, r.promise.catch(() => {}).then(() => pgPool.end().catch(() => {})));
    if (starting) {
      poolIds.set(r, starting);
      liveness.add(starting, pool);
    }
    return r;
  };

  let stopping = false;
  let runner = await start();
  const supervise = (r: Runner) => {
    let replacing = false;
    const replace = async (err: unknown) => {
      if (stopping || replacing) return;
      replacing = true;
      log.error({ err }, 'worker pool failed; starting a new one when the database answers');
      // The failed pool may hang in its own graceful shutdown (it cannot release its jobs
      // while the database is away): ask it to stop, and do not wait for it.
      void r.stop().catch(() => {});
      // It beats no more: jobs of it that are not released below, any worker's heartbeat
      // sweep releases (jobs/liveness.ts).
      const dead = poolIds.get(r);
      if (dead) liveness.remove(dead);
      for (let attempt = 1; !stopping; attempt++) {
        await new Promise((resolve) => setTimeout(resolve, Math.min(500 * 2 ** attempt, 30_000)));
        if (stopping) return;
        try {
          const next = await start();
          if (stopping) return void (await next.stop());
          runner = next;
          supervise(next);
          // Released at once if the database lets us; if not, the new pool runs on (starting
          // yet another would leave this one running unsupervised) and the sweep frees them.
          const released =
            dead !== undefined &&
            (await deps.db.execute(sql`select graphile_worker.force_unlock_workers(array[${dead}]::text[])`).then(
              () => true,
              (e: unknown) => {
                log.warn({ err: e }, 'jobs of the failed pool not released now; the heartbeat sweep will');
                return false;
              },
            ));
          log.info({ released: released ? dead : undefined }, 'worker pool restarted');
          return;
        } catch (e) {
          log.warn({ err: e, attempt }, 'worker pool not restarted yet');
        }
      }
    };
    // A pool that gives up ("Could not failJobs; queue is in an inconsistent state") first
    // announces its graceful shutdown, then settles either way — if its shutdown ends at all.
    events.on('pool:gracefulShutdown', ({ workerPool, message }) => {
      if (workerPool.id === poolIds.get(r)) void replace(new Error(message));
    });
    r.promise.then(() => replace(new Error('worker pool exited')), replace);
  };
  supervise(runner);

  return {
    get runner() {
      return runner;
    },
    // runner.promise settles once the pool is released: a caller may then drop the database.
    stop: async (deadlineMs?: number) => {
      stopping = true;
      const deadline = deadlineMs === undefined ? undefined : setTimeout(() => void runner.kill('shutdown timeout').catch(() => {}), deadlineMs);
      await runner.stop().catch(() => {});
      await runner.promise.catch(() => {});
      await poolsEnded.get(runner);
      clearTimeout(deadline);
    },
  };
}
