import { z } from 'zod';

/**
 * Every graphile-worker task, with the schema of its payload. A job may have been queued
 * by an older release, so handlers parse their payload with these at run time (see
 * worker.ts) rather than trusting the type.
 */
export const jobCatalog = {
  /**
   * Download, sniff, convert and store the files of up to FILE_BATCH_SIZE new documents of
   * one sync (files/tasks.ts): a graphile-worker batch job, whose documents that failed
   * alone are retried (jobs/files.ts queues them).
   */
  fetch_document_files: z.array(z.number().int()),
  /** The same for one document, as releases before batches queued it (handled by the same code). */
  fetch_document_file: z.object({ documentId: z.number().int() }),
  /** Thumbnails of ready files, drawn after their announcement (files/thumbnail-job.ts); a batch job. */
  render_thumbnails: z.array(z.number().int()),
  /** A document's file is settled (ready, failed or none): announce it (notify/announce.ts). */
  announce_document: z.object({ documentId: z.number().int() }),
  /** The same for the documents of one file batch, in one transaction; a batch job (notify/announce.ts). */
  announce_documents: z.array(z.number().int()),
  /**
   * POST one message to one customer endpoint, svix-signed. `attempt` (1-based) is the try
   * this job makes: a job whose attempt was already made (a stale duplicate) does nothing.
   */
  deliver_message: z.object({ messageId: z.string(), attempt: z.number().int().min(1).default(1) }),
  /**
   * First attempts of messages to healthy endpoints, as a graphile-worker batch job: the
   * payload is an array, and jobs added under the same key while one waits are merged into
   * it (see events/record.ts), so one job makes many deliveries.
   */
  deliver_messages: z.array(z.object({ messageId: z.string(), attempt: z.number().int().min(1) })),
  /** Every 5 minutes (cron): re-queue messages whose delivery job was lost (notify/sweep.ts). */
  sweep_stranded_messages: z.object({}).loose(),
  /** Every 5 minutes (cron): fail the files whose job keeps dying with its worker (files/sweep.ts). */
  sweep_stuck_files: z.object({}).loose(),
  /** Every hour (cron): delete what is past its retention period (retention/prune.ts). */
  prune_retention: z.object({}).loose(),
  /** Svix API mode: hand one event to Svix, which fans it out to the mirrored endpoints. */
  publish_event: z.object({ eventId: z.string() }),
  /** Mail one announced document to its user. */
  send_document_email: z.object({ documentId: z.number().int() }),
  /** POST one operational event to OPS_WEBHOOK_URL, svix-signed (notify/ops-send.ts). */
  send_ops_webhook: z.object({ eventId: z.string() }),
  /** Mail one operational event to OPS_EMAIL (notify/ops-send.ts). */
  send_ops_email: z.object({ eventId: z.string() }),
  /** Ask the aggregator to re-sync a connection that hit a captcha (captcha/tasks.ts). */
  captcha_resync: z.object({ connectionId: z.number().int() }),
} as const;

export type JobName = keyof typeof jobCatalog;
export type JobPayload<N extends JobName> = z.infer<(typeof jobCatalog)[N]>;
