import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import type { Deps } from '../deps.js';
import { documentFiles, documents } from '../db/schema/index.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { announceJobKey, fileJobKey } from '../jobs/keys.js';
import { download, FetchError, type Downloaded } from './fetch.js';
import type { FileServices } from './services.js';
import { sniffFile } from './sniff.js';
import { IMAGE_TYPES } from './thumbnails.js';
import { PgBlobStore, type BlobInfo, type BlobStore } from '../blobs/store.js';

/**
 * Tries of one file before it is marked failed. graphile-worker waits e^n seconds after
 * failed try n (`exp(least(attempts, 10))`): 3 s, 7 s, 20 s, 55 s, 2.5 min, 6.7 min and
 * 18 min, so the 8th try comes about 29 min (1,733 s of waits) after the first.
 */
export const FILE_MAX_ATTEMPTS = 8;

/** A settled file: what goes into document_files, and the blobs it references. */
interface Outcome {
  main: StoredBlob;
  original?: StoredBlob;
  thumbnail?: StoredBlob;
  /** Why a ready file is not what was asked for (an HTML page whose conversion failed). */
  error?: string;
}
interface StoredBlob extends BlobInfo {
  source: string | Buffer;
}

/**
 * fetch_document_file: download the document's source URL, sniff its type, convert HTML
 * to PDF when force_pdf was on at its sync, draw a thumbnail, store the blobs, and settle
 * `file.status` — in one transaction with the announce_document job, so that
 * notifications always follow the file and a crash anywhere before that commit leaves a
 * pending file that the retried job completes.
 *
 * Network errors, timeouts and 5xx are thrown, so graphile-worker retries them with its
 * exponential backoff (see FILE_MAX_ATTEMPTS); the last attempt, and any permanent failure
 * (4xx, refused address, too large, bad URL), marks the file `failed` with the reason
 * instead.
 */
export const fetchDocumentFile: JobHandlerFactory<'fetch_document_file'> = (deps) => {
  const { limits, downloads } = deps.files;
  const store: BlobStore = new PgBlobStore(deps.db);
  const log = deps.log.child({ task: 'fetch_document_file' });

  return async ({ documentId }, helpers) => {
    const started = performance.now();
    const count = (outcome: 'ready' | 'failed' | 'none' | 'retry') => {
      deps.metrics.fileJobs.inc({ outcome });
      deps.metrics.fileJobDuration.observe({ outcome }, (performance.now() - started) / 1000);
    };
    const [row] = await deps.db
      .select({ sourceUrl: documents.sourceUrl, forcePdf: documents.forcePdf, status: documentFiles.status })
      .from(documents)
      .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
      .where(eq(documents.id, documentId));
    if (!row) return; // erased since it was queued
    // ready/failed were settled in the transaction that also queued the announcement.
    if (row.status === 'ready' || row.status === 'failed') return;
    if (!row.sourceUrl || row.status === 'none') {
      await settleWithoutFile(deps, documentId);
      count('none');
      return;
    }
    if (row.status === null) {
      await deps.db.insert(documentFiles).values({ documentId, status: 'pending' }).onConflictDoNothing();
    }

    const dir = await mkdtemp(join(tmpdir(), 'docrelay-file-'));
    try {
      const downloaded = await download(row.sourceUrl, join(dir, 'download'), limits, downloads);
      const outcome = await blobsOfDownload(downloaded, row.forcePdf, deps.files, (msg, err) => log.warn({ documentId, err }, msg));
      await storeAndSettleFile(deps, store, documentId, { status: 'ready', outcome });
      count('ready');
      log.info({ documentId, sha256: outcome.main.sha256, size: outcome.main.size, type: outcome.main.contentType }, 'file ready');
    } catch (err) {
      const permanent = err instanceof FetchError && err.permanent;
      const lastAttempt = helpers.job.attempts >= Math.min(helpers.job.max_attempts, FILE_MAX_ATTEMPTS);
      // Anything else is our own failure (database, disk…): retried too, but not described to clients.
      const known = err instanceof FetchError;
      const reason = known ? err.message : 'internal error while storing the file';
      if (!permanent && !lastAttempt) {
        log.warn({ documentId, attempt: helpers.job.attempts, reason, err: known ? undefined : err }, 'file not fetched, will retry');
        count('retry');
        throw err;
      }
      if (!known) log.error({ documentId, err }, 'file failed on an internal error');
      const error = permanent ? reason : `${reason} (gave up after ${helpers.job.attempts} attempts)`;
      await storeAndSettleFile(deps, store, documentId, { status: 'failed', error });
      count('failed');
      log.info({ documentId, error }, 'file failed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
};

/** Type, conversion and thumbnail of a downloaded file; nothing is written yet. */
async function blobsOfDownload(
  file: Downloaded,
  forcePdf: boolean,
  { renderer, pdfThumbnail, imageThumbnail }: FileServices,
  warn: (msg: string, err: unknown) => void,
): Promise<Outcome> {
  const sniffed = await sniffFile(file.path);
  const charset = charsetOf(file.declaredType);
  const downloaded: StoredBlob = {
    sha256: file.sha256,
    size: file.size,
    contentType: sniffed.mime.startsWith('text/') && charset ? `${sniffed.mime}; charset=${charset}` : sniffed.mime,
    source: file.path,
  };

  if (sniffed.mime === 'text/html') {
    const html = await readFile(file.path);
    if (forcePdf) {
      let rendered;
      try {
        rendered = await renderer.render(html, { pdf: true, charset });
      } catch (err) {
        // The download went well: keep the page as it came (served as an attachment, in its
        // sandbox) rather than fetch and render it again, and say why it is not a PDF.
        // The reason in file.error is told to clients: the details go to the log only.
        warn('HTML to PDF conversion failed; the original page is kept', err);
        const why = (err as Error).name === 'TimeoutError' ? 'timed out' : 'the page could not be rendered';
        return { main: downloaded, error: `HTML to PDF conversion failed: ${why}` };
      }
      return { main: bufferBlob(rendered.pdf!, 'application/pdf'), original: downloaded, thumbnail: bufferBlob(rendered.png, 'image/png') };
    }
    try {
      const { png } = await renderer.render(html, { pdf: false, charset });
      return { main: downloaded, thumbnail: bufferBlob(png, 'image/png') };
    } catch (err) {
      warn('HTML thumbnail failed; the file is kept without one', err);
      return { main: downloaded };
    }
  }

  if (sniffed.mime === 'application/pdf') {
    try {
      return { main: downloaded, thumbnail: bufferBlob(await pdfThumbnail(await readFile(file.path)), 'image/png') };
    } catch (err) {
      // A PDF pdf.js cannot draw (damaged, encrypted, past the thumbnail's limits) is still
      // the provider's file.
      warn('PDF thumbnail failed; the file is kept without one', err);
      return { main: downloaded };
    }
  }
  if (IMAGE_TYPES.has(sniffed.mime)) {
    try {
      return { main: downloaded, thumbnail: bufferBlob(await imageThumbnail(await readFile(file.path)), 'image/png') };
    } catch (err) {
      warn('image thumbnail failed; the file is kept without one', err); // e.g. more pixels than the limit
      return { main: downloaded };
    }
  }
  return { main: downloaded };
}

function bufferBlob(data: Buffer, contentType: string): StoredBlob {
  return { sha256: createHash('sha256').update(data).digest('hex'), size: data.length, contentType, source: data };
}

function charsetOf(contentType: string | undefined): string | undefined {
  const m = /;\s*charset\s*=\s*"?([A-Za-z0-9_.:-]{1,40})"?/i.exec(contentType ?? '');
  return m?.[1].toLowerCase();
}

type Settlement = { status: 'ready'; outcome: Outcome } | { status: 'failed'; error: string };

/**
 * Store the blobs and settle the file row, with its announce job, in one transaction. The
 * row is locked first: a concurrent erasure either ran before (the row is gone: no-op) or
 * waits for this commit and then sweeps what became unreferenced.
 */
async function storeAndSettleFile(deps: Deps, store: BlobStore, documentId: number, s: Settlement): Promise<void> {
  await deps.db.transaction(async (tx) => {
    const [file] = await tx
      .select({ status: documentFiles.status })
      .from(documentFiles)
      .where(eq(documentFiles.documentId, documentId))
      .for('update');
    if (!file || file.status !== 'pending') return;
    if (s.status === 'ready') {
      const { main, original, thumbnail } = s.outcome;
      for (const b of [main, original, thumbnail]) if (b) await store.put(tx, b, b.source);
      await tx
        .update(documentFiles)
        .set({
          status: 'ready',
          error: s.outcome.error ?? null,
          sha256: main.sha256,
          contentType: main.contentType,
          size: main.size,
          originalSha256: original?.sha256 ?? null,
          thumbnailSha256: thumbnail?.sha256 ?? null,
          updatedAt: sql`now()`,
        })
        .where(eq(documentFiles.documentId, documentId));
    } else {
      await tx
        .update(documentFiles)
        .set({ status: 'failed', error: s.error, updatedAt: sql`now()` })
        .where(eq(documentFiles.documentId, documentId));
    }
    await enqueue(tx, 'announce_document', { documentId }, { jobKey: announceJobKey(documentId) });
  });
}

/** Settle a pending file as failed (and announce it); for the stuck-file sweep. */
export async function failPendingFile(deps: Deps, documentId: number, error: string): Promise<void> {
  await storeAndSettleFile(deps, new PgBlobStore(deps.db), documentId, { status: 'failed', error });
}

/**
 * A document without a URL has nothing to fetch: hand it straight to notifications. The
 * document row is read locked and again, not trusted from the job's first read: a sync
 * giving it a url holds that row until it commits, and has then put its file back to
 * pending with a fetch job, which must not be settled as none. (A lock, not just a
 * condition in the update: the update's subquery would read the document as it was
 * before that sync committed.) If the url came back while the file was still pending, the
 * sync queued no fetch job: queue one.
 */
async function settleWithoutFile(deps: Deps, documentId: number): Promise<void> {
  await deps.db.transaction(async (tx) => {
    const [doc] = await tx.select({ sourceUrl: documents.sourceUrl }).from(documents).where(eq(documents.id, documentId)).for('share');
    if (!doc) return; // erased since
    if (doc.sourceUrl !== null) {
      await enqueue(tx, 'fetch_document_file', { documentId }, { jobKey: fileJobKey(documentId) });
      return;
    }
    await tx
      .insert(documentFiles)
      .values({ documentId, status: 'none' })
      .onConflictDoUpdate({ target: documentFiles.documentId, set: { status: 'none' }, where: sql`${documentFiles.status} = 'pending'` });
    await enqueue(tx, 'announce_document', { documentId }, { jobKey: announceJobKey(documentId) });
  });
}
