import { Logger as WorkerLogger, run, type Runner, type Task, type TaskList } from 'graphile-worker';
import { captchaResync } from './captcha/tasks.js';
import type { Deps } from './deps.js';
import { fetchDocumentFile } from './files/tasks.js';
import { jobCatalog, type JobName } from './jobs/catalog.js';
import type { JobHandlerFactory } from './jobs/handler.js';
import { announceDocument, deliverMessage, deliverMessages, publishEvent, sendDocumentEmail, sweepStrandedMessages } from './notify/tasks.js';

/** The task list: one handler per catalog entry (the type makes a missing one a compile error). */
const handlers: { [N in JobName]: JobHandlerFactory<N> } = {
  fetch_document_file: fetchDocumentFile,
  announce_document: announceDocument,
  deliver_message: deliverMessage,
  deliver_messages: deliverMessages,
  sweep_stranded_messages: sweepStrandedMessages,
  publish_event: publishEvent,
  send_document_email: sendDocumentEmail,
  captcha_resync: captchaResync,
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
      await handler(parsed.data as never, helpers);
    };
    list[name] = task;
  }
  return list;
}

export interface Worker {
  /** Stops taking jobs and waits for the running ones to finish. */
  stop(): Promise<void>;
  runner: Runner;
}

export async function startWorker(
  deps: Deps,
  databaseUrl: string,
  /**
   * `resetLockedIntervalMs`: how often jobs locked by a dead worker (locked for over 4 h)
   * are freed; graphile-worker's default is every 8–10 min. Tests shorten it.
   */
  opts: { pollInterval?: number; resetLockedIntervalMs?: number } = {},
): Promise<Worker> {
  const log = deps.log.child({ component: 'worker' });
  const logger = new WorkerLogger((scope) => (level, message, meta) => {
    const lvl = level === 'warning' ? 'warn' : level;
    (log[lvl as 'info'] ?? log.info).call(log, { scope, ...meta }, message);
  });
  const runner = await run({
    connectionString: databaseUrl,
    concurrency: deps.config.workerConcurrency,
    taskList: buildTaskList(deps),
    noHandleSignals: true,
    pollInterval: opts.pollInterval ?? 1000,
    logger,
    // Periodic tasks; graphile-worker makes sure one worker runs each tick.
    crontab: '*/5 * * * * sweep_stranded_messages',
    ...(opts.resetLockedIntervalMs
      ? { preset: { worker: { minResetLockedInterval: opts.resetLockedIntervalMs, maxResetLockedInterval: opts.resetLockedIntervalMs * 2 } } }
      : {}),
  });
  // runner.promise settles once the pool is released: a caller may then drop the database.
  return { runner, stop: async () => { await runner.stop(); await runner.promise.catch(() => {}); } };
}
