import { sql } from 'drizzle-orm';
import { Counter, Gauge, Histogram, Registry } from 'prom-client';
import type { Db } from '../db/client.js';

/**
 * The service's Prometheus metrics, on a registry of their own: main.ts
 * builds one per process and passes it in Deps, and each test builds its own, so two apps
 * in one process never share (or double-register) a counter.
 *
 * Counters are incremented where the thing happens, in the process where it happens: the
 * web process counts inbound webhooks, the worker counts files, deliveries and mails (with
 * ROLE=web and ROLE=worker apart, scrape both, each on its METRICS_PORT). What is state in
 * the database — queues, captcha statuses — is read at scrape time, so every process
 * reports the same truth.
 */
export interface Metrics {
  registry: Registry;
  inboundWebhooks: Counter<'event' | 'outcome'>;
  inboundDuration: Histogram<'event'>;
  documents: Counter<'change'>;
  subscriptions: Counter<'change'>;
  fileJobs: Counter<'outcome'>;
  fileJobDuration: Histogram<'outcome'>;
  deliveries: Counter<'endpoint' | 'outcome'>;
  deliveryDuration: Histogram<'endpoint'>;
  mails: Counter<'outcome'>;
  jobsQueued: Gauge<'task'>;
  jobsOldestAge: Gauge<'task'>;
  jobsFailed: Gauge<'task'>;
  connectionsByCaptcha: Gauge<'captcha_status'>;
}

export function createMetrics(): Metrics {
  const registry = new Registry();
  const registers = [registry];
  return {
    registry,
    inboundWebhooks: new Counter({
      name: 'docrelay_inbound_webhooks_total',
      help: 'Inbound Powens webhooks by event and outcome (processed, duplicate, stale, or the error code)',
      labelNames: ['event', 'outcome'],
      registers,
    }),
    inboundDuration: new Histogram({
      name: 'docrelay_inbound_webhook_duration_seconds',
      help: 'Time to answer an inbound webhook (for CONNECTION_SYNCED: the whole sync, diff and jobs included)',
      labelNames: ['event'],
      buckets: [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30],
      registers,
    }),
    documents: new Counter({
      name: 'docrelay_documents_total',
      help: 'Documents changed by syncs: added, updated',
      labelNames: ['change'],
      registers,
    }),
    subscriptions: new Counter({
      name: 'docrelay_subscriptions_total',
      help: 'Subscriptions changed by syncs: added, archived (their documents hidden with them), restored',
      labelNames: ['change'],
      registers,
    }),
    fileJobs: new Counter({
      name: 'docrelay_file_jobs_total',
      help: 'Document file jobs by outcome: ready, failed, none (no file), retry (will try again)',
      labelNames: ['outcome'],
      registers,
    }),
    fileJobDuration: new Histogram({
      name: 'docrelay_file_job_duration_seconds',
      help: 'Time of one file job attempt (download, conversion, thumbnail, storage)',
      labelNames: ['outcome'],
      buckets: [0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60],
      registers,
    }),
    deliveries: new Counter({
      name: 'docrelay_webhook_deliveries_total',
      help: 'Customer webhook delivery attempts by endpoint and outcome (succeeded, or failed)',
      labelNames: ['endpoint', 'outcome'],
      registers,
    }),
    deliveryDuration: new Histogram({
      name: 'docrelay_webhook_delivery_duration_seconds',
      help: 'Latency of customer webhook delivery attempts, by endpoint',
      labelNames: ['endpoint'],
      buckets: [0.01, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 15],
      registers,
    }),
    mails: new Counter({
      name: 'docrelay_mails_total',
      help: 'Document emails by outcome: sent, failed, retry (a temporary SMTP error)',
      labelNames: ['outcome'],
      registers,
    }),
    jobsQueued: new Gauge({
      name: 'docrelay_jobs_queued',
      help: 'Jobs waiting or running, by task (read at scrape time)',
      labelNames: ['task'],
      registers,
    }),
    jobsOldestAge: new Gauge({
      name: 'docrelay_jobs_oldest_due_age_seconds',
      help: 'How long the oldest due job of each task has been waiting (0: none due)',
      labelNames: ['task'],
      registers,
    }),
    jobsFailed: new Gauge({
      name: 'docrelay_jobs_failed',
      help: 'Jobs that failed for good, by task (GET /jobs/failed)',
      labelNames: ['task'],
      registers,
    }),
    connectionsByCaptcha: new Gauge({
      name: 'docrelay_connections',
      help: 'Connections by captcha status (none, retrying, gave_up, disabled)',
      labelNames: ['captcha_status'],
      registers,
    }),
  };
}

const captchaStatuses = ['none', 'retrying', 'gave_up', 'disabled'];

/** Read the state gauges from the database, then render every metric. */
export async function scrape(metrics: Metrics, db: Db, tasks: readonly string[]): Promise<string> {
  const [jobs, conns] = await Promise.all([
    db.execute<{ task: string; queued: number; failed: number; oldest_s: number | null }>(sql`
      select task_identifier as task,
        count(*) filter (where attempts < max_attempts)::int as queued,
        count(*) filter (where attempts >= max_attempts)::int as failed,
        extract(epoch from now() - min(run_at) filter (where attempts < max_attempts and run_at <= now() and locked_at is null))::float8 as oldest_s
      from graphile_worker.jobs group by task_identifier`),
    db.execute<{ status: string; n: number }>(sql`
      select coalesce(captcha_status, 'none') as status, count(*)::int as n from connections group by 1`),
  ]);
  // Every known task and status is reported, at 0 when there is none: a missing series is not a 0 to alerting rules.
  metrics.jobsQueued.reset();
  metrics.jobsOldestAge.reset();
  metrics.jobsFailed.reset();
  for (const task of tasks) {
    metrics.jobsQueued.set({ task }, 0);
    metrics.jobsOldestAge.set({ task }, 0);
    metrics.jobsFailed.set({ task }, 0);
  }
  for (const j of jobs) {
    metrics.jobsQueued.set({ task: j.task }, j.queued);
    metrics.jobsFailed.set({ task: j.task }, j.failed);
    metrics.jobsOldestAge.set({ task: j.task }, Math.max(0, j.oldest_s ?? 0));
  }
  metrics.connectionsByCaptcha.reset();
  for (const status of captchaStatuses) metrics.connectionsByCaptcha.set({ captcha_status: status }, 0);
  for (const c of conns) metrics.connectionsByCaptcha.set({ captcha_status: c.status }, c.n);
  return metrics.registry.metrics();
}
