import { sql } from 'drizzle-orm';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { failPendingFile } from './tasks.js';

/**
 * sweep_stuck_files (cron, every 5 minutes): a file whose job keeps dying with its worker
 * (killed for memory, a native crash) would stay `pending` for ever, and its document never
 * be announced: graphile-worker frees a dead worker's job only after 4 hours, retries it,
 * and a job that always dies never records an error nor reaches its last attempt.
 *
 * Each try at a file is recorded on its row (files/tasks.ts): `attempts` counts it and
 * `claimed_at` says when it began, until it ends (settled, or released to be retried). A
 * try is bounded (download, thumbnail and conversion each have a time limit), so one still
 * open after DEAD_AFTER belongs to a dead worker. When that is so at the file's second try
 * or later — it died more than once — the file is settled `failed`, and announced, as any
 * failed file. Should graphile-worker run the job again later, it finds the file settled
 * and does nothing.
 */
export const DEAD_AFTER = '30 minutes';

export const sweepStuckFiles: JobHandlerFactory<'sweep_stuck_files'> = (deps) => async () => {
  const stuck = await deps.db.execute<{ document_id: string; attempts: number }>(sql`
    select document_id, attempts from document_files
    where status = 'pending' and claimed_at < now() - ${DEAD_AFTER}::interval and attempts >= 2`);
  for (const { document_id, attempts } of stuck) {
    const documentId = Number(document_id);
    await failPendingFile(deps, documentId, `the file could not be processed: its job stopped ${attempts} times without finishing`);
    deps.log.warn({ documentId, attempts }, 'file job kept dying; file settled as failed');
  }
};
