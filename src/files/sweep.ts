import { sql } from 'drizzle-orm';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { fileJobKey } from '../jobs/keys.js';
import { failPendingFile } from './tasks.js';

/**
 * sweep_stuck_files (cron, every 5 minutes): a file whose job keeps dying with its worker
 * (killed for memory, a native crash) would stay `pending` for ever, and its document never
 * be announced: graphile-worker frees a dead worker's job only after 4 hours, retries it,
 * and a job that always dies never records an error nor reaches its last attempt.
 *
 * A file job that runs is bounded (download, thumbnail and conversion each have a time
 * limit), so one still locked after DEAD_AFTER belongs to a dead worker. When that is so
 * at its second attempt or later — it died more than once — or when its attempts ran out,
 * the file is settled `failed`, and announced, as any failed file. Should graphile-worker
 * run the job again later, it finds the file settled and does nothing.
 */
export const DEAD_AFTER = '30 minutes';

export const sweepStuckFiles: JobHandlerFactory<'sweep_stuck_files'> = (deps) => async () => {
  // The public jobs view has no payload: the document is read from the job's key (file:<id>).
  const stuck = await deps.db.execute<{ document_id: string; attempts: number }>(sql`
    select f.document_id, j.attempts
    from graphile_worker.jobs j
    join document_files f on f.document_id = substr(j.key, length(${fileJobKey(0).slice(0, -1)}) + 1)::bigint
    where j.task_identifier = 'fetch_document_file'
      and j.key ^@ ${fileJobKey(0).slice(0, -1)}
      and f.status = 'pending'
      and j.attempts >= 2
      and (j.locked_at < now() - ${DEAD_AFTER}::interval or (j.locked_at is null and j.attempts >= j.max_attempts))`);
  for (const { document_id, attempts } of stuck) {
    const documentId = Number(document_id);
    await failPendingFile(deps, documentId, `the file could not be processed: its job stopped ${attempts} times without finishing`);
    deps.log.warn({ documentId, attempts }, 'file job kept dying; file settled as failed');
  }
};
