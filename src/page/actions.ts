import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import { enqueueFileFetches } from '../jobs/files.js';

/**
 * Fetch a failed document file again: the file goes back to `pending` and its job is
 * queued in the same transaction (the job settles only pending files). The document was
 * already announced with its failed file: it is not announced a second time.
 */
export async function retryFailedFile(db: Db, documentId: number): Promise<boolean> {
  return db.transaction(async (tx) => {
    const rows = await tx.execute(sql`
      update document_files set status = 'pending', error = null, attempts = 0, claimed_at = null, updated_at = now()
      where document_id = ${documentId} and status = 'failed' returning document_id`);
    if (rows.length === 0) return false;
    await enqueueFileFetches(tx, [documentId]);
    return true;
  });
}
