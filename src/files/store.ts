import { sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';

/**
 * Content-addressed blob storage (CONTRACT.md §7). Placeholder until the files issue lands
 * the storage interface; erasure already relies on this sweep.
 */
export async function deleteUnreferencedBlobs(tx: Tx): Promise<void> {
  await tx.execute(sql`
    delete from blobs b
    where not exists (
      select 1 from document_files f
      where f.sha256 = b.sha256 or f.original_sha256 = b.sha256 or f.thumbnail_sha256 = b.sha256
    )`);
}
