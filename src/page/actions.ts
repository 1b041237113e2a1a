import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { enqueue } from '../jobs/enqueue.js';
import { fileJobKey } from '../jobs/keys.js';

/**
 * Fetch a failed document file again: the file goes back to `pending` and its job is
 * queued in the same transaction (the job settles only pending files). The document was
 * already announced with its failed file: it is not announced a second time.
 */
export async function retryFailedFile(db: Db, documentId: number): Promise<boolean> {
  return db.transaction(async (tx) => {
    const rows = await tx.execute(sql`
      update document_files set status = 'pending', error = null, updated_at = now()
      where document_id = ${documentId} and status = 'failed' returning document_id`);
    if (rows.length === 0) return false;
    await enqueue(tx, 'fetch_document_file', { documentId }, { jobKey: fileJobKey(documentId) });
    return true;
  });
}
