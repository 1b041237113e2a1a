import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { PgBlobStore } from '../blobs/store.js';
import { sqlArray } from '../db/arrays.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import type { FileServices } from './services.js';
import { IMAGE_TYPES } from './thumbnails.js';

/**
 * render_thumbnails: the thumbnails of files already ready and announced, drawn off the
 * announcement's path (a PDF's first page by pdf.js in its thread, a PNG or JPEG in the
 * same thread, an HTML page by Chromium). Queued by the file job in the transaction that settles each file, under one
 * key per batch (jobs/keys.ts), so a batch of files makes one thumbnail job.
 *
 * A file that has a thumbnail, is no longer ready, or whose bytes changed (fetched again)
 * is skipped, so a re-run draws nothing twice. A file that cannot be drawn (damaged, past
 * the thumbnail's limits) keeps no thumbnail, as before: that is final, not retried.
 */
export const renderThumbnails: JobHandlerFactory<'render_thumbnails'> = (deps) => {
  const store = new PgBlobStore(deps.db);
  const log = deps.log.child({ task: 'render_thumbnails' });
  return async (documentIds) => {
    const files = await deps.db.execute<{ id: number; sha256: string; content_type: string }>(sql`
      select document_id::float8 as id, sha256, content_type from document_files
      where document_id = any(${sqlArray(documentIds, 'bigint')}) and status = 'ready' and thumbnail_sha256 is null`);
    for (const file of files) {
      const chunks: Buffer[] = [];
      for await (const c of store.read(file.sha256)) chunks.push(c);
      let png: Buffer | undefined;
      try {
        png = await thumbnailOf(Buffer.concat(chunks), file.content_type, deps.files);
      } catch (err) {
        log.warn({ documentId: file.id, err }, 'thumbnail failed; the file is kept without one');
      }
      if (!png) continue;
      const thumb = { sha256: createHash('sha256').update(png).digest('hex'), size: png.length, contentType: 'image/png' };
      await deps.db.transaction(async (tx) => {
        // Locked first, as the file job does: an erasure either ran before (no row: nothing
        // written) or waits for this commit and then sweeps the blob too.
        const [row] = await tx.execute<{ sha256: string | null }>(sql`
          select sha256 from document_files where document_id = ${file.id} and status = 'ready' for update`);
        if (!row || row.sha256 !== file.sha256) return;
        await store.put(tx, thumb, png);
        await tx.execute(sql`update document_files set thumbnail_sha256 = ${thumb.sha256} where document_id = ${file.id}`);
      });
    }
  };
};

/** A PNG of the first page, for the types that have one; undefined for the others. */
async function thumbnailOf(data: Buffer, contentType: string, { renderer, pdfThumbnail, imageThumbnail }: FileServices): Promise<Buffer | undefined> {
  if (contentType === 'application/pdf') return pdfThumbnail(data);
  if (IMAGE_TYPES.has(contentType)) return imageThumbnail(data);
  if (contentType.startsWith('text/html')) {
    const charset = /charset=([A-Za-z0-9_.:-]+)/i.exec(contentType)?.[1];
    return (await renderer.render(data, { pdf: false, charset })).png;
  }
  return undefined;
}
