import { eq } from 'drizzle-orm';
import { documents } from '../db/schema/index.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';

/**
 * fetch_document_file — minimal until the files issue lands: hands the document straight
 * to notifications, so the pipeline (diff → file → announce) is real end to end.
 */
export const fetchDocumentFile: JobHandlerFactory<'fetch_document_file'> = (deps) => async ({ documentId }) => {
  const [doc] = await deps.db.select({ id: documents.id }).from(documents).where(eq(documents.id, documentId));
  if (!doc) return; // erased since: nothing to do
  await enqueue(deps.db, 'announce_document', { documentId }, { jobKey: `announce:${documentId}` });
};
