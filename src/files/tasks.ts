import { createHash } from 'node:crypto';
import { mkdtemp, readFile, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { eq, sql } from 'drizzle-orm';
import type { Job } from 'graphile-worker';
import { sqlArray } from '../db/arrays.js';
import type { Deps } from '../deps.js';
import { documentFiles, documents } from '../db/schema/index.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { enqueueFileFetches } from '../jobs/files.js';
import { announceBatchJobKey, announceJobKey, thumbnailJobKey } from '../jobs/keys.js';
import { download, FetchError, type Downloaded } from './fetch.js';
import type { FileServices } from './services.js';
import { sniffFile } from './sniff.js';
import { PgBlobStore, type BlobInfo, type BlobStore } from '../blobs/store.js';

/**
 * Tries of one file before it is marked failed, counted per document in
 * document_files.attempts (whichever job made them). graphile-worker waits e^n seconds
 * after failed try n of a job (`exp(least(attempts, 10))`): 3 s, 7 s, 20 s, 55 s, 2.5 min,
 * 6.7 min and 18 min, so the 8th try comes about 29 min (1,733 s of waits) after the first.
 */
export const FILE_MAX_ATTEMPTS = 8;
/** Files of one batch job fetched at once; the job holds one slot of the file pool (FILE_CONCURRENCY). */
export const FILE_BATCH_CONCURRENCY = 8;

/** A file that a job has taken to fetch: its row was pending, and its try is counted. */
interface Claimed {
  documentId: number;
  sourceUrl: string | null;
  forcePdf: boolean;
  /** Tries of this file so far, this one included. */
  attempts: number;
}

/**
 * fetch_document_files, a graphile-worker batch job: the new documents of one sync, up to
 * FILE_BATCH_SIZE of them (jobs/files.ts). Each pending file is fetched, FILE_BATCH_CONCURRENCY
 * at a time, and settled on its own (see fetchFile); the job returns one promise per
 * document, and graphile-worker retries with backoff only the documents whose promise
 * rejected. The file's row is the truth: a document settled or erased since is skipped, so
 * a retried batch fetches nothing twice (and of two jobs fetching one file at once, the
 * second to settle it finds it settled and writes nothing).
 */
export const fetchDocumentFiles: JobHandlerFactory<'fetch_document_files'> = (deps) => {
  const fetchFile = fileFetcher(deps, { batched: true });
  return async (documentIds, helpers) => {
    const claimed = await claimFiles(deps, documentIds);
    const outcomes = new Map<number, Promise<void>>();
    let next = 0;
    const lane = async () => {
      while (next < claimed.length) {
        const file = claimed[next++];
        const done = fetchFile(file, helpers.job).catch((err: unknown) => {
          throw new Error(`document ${file.documentId}: ${(err as Error).message}`);
        });
        outcomes.set(file.documentId, done);
        await done.catch(() => {});
      }
    };
    await Promise.all(Array.from({ length: Math.min(FILE_BATCH_CONCURRENCY, claimed.length) }, lane));
    return documentIds.map((id) => outcomes.get(id) ?? Promise.resolve());
  };
};

/**
 * fetch_document_file, the job of one document queued by releases before batches: the
 * same fetch, and — as then — a document without a url (or whose row predates the file
 * rows) is settled here. A try to retry rejects with its FetchError.
 */
export const fetchDocumentFile: JobHandlerFactory<'fetch_document_file'> = (deps) => {
  const fetchFile = fileFetcher(deps, { batched: false });
  return async ({ documentId }, helpers) => {
    const [row] = await deps.db
      .select({ sourceUrl: documents.sourceUrl, status: documentFiles.status })
      .from(documents)
      .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
      .where(eq(documents.id, documentId));
    if (!row) return; // erased since it was queued
    if (row.status === 'none') return settleWithoutFile(deps, documentId);
    if (row.status === null) {
      await deps.db.insert(documentFiles).values({ documentId, status: 'pending' }).onConflictDoNothing();
    }
    const [file] = await claimFiles(deps, [documentId]);
    if (file) await fetchFile(file, helpers.job);
  };
};

/**
 * Take the pending files among these documents: count the try, and note when it started
 * (the stuck-file sweep looks for tries that never ended). Settled, `none` and erased
 * documents are left out.
 */
async function claimFiles(deps: Deps, documentIds: readonly number[]): Promise<Claimed[]> {
  if (documentIds.length === 0) return [];
  const rows = await deps.db.execute<{ id: number; source_url: string | null; force_pdf: boolean; attempts: number }>(sql`
    update document_files f set attempts = f.attempts + 1, claimed_at = now()
    from documents d
    where f.document_id = any(${sqlArray(documentIds, 'bigint')}) and d.id = f.document_id and f.status = 'pending'
    returning f.document_id::float8 as id, d.source_url, d.force_pdf, f.attempts`);
  const byId = new Map(rows.map((r) => [Number(r.id), r]));
  return documentIds.flatMap((id) => {
    const r = byId.get(id);
    return r ? [{ documentId: id, sourceUrl: r.source_url, forcePdf: r.force_pdf, attempts: r.attempts }] : [];
  });
}

/**
 * One try at one claimed file: download it, sniff its type, convert HTML to PDF when
 * force_pdf was on at its sync, store the blobs, and settle `file.status` — in one
 * transaction with its announcement's job (and the thumbnail's, drawn after), so that
 * notifications always follow the file and a crash anywhere before that commit leaves a
 * pending file that a retry completes.
 *
 * Network errors, timeouts and 5xx reject, to be retried with the job's backoff (see
 * FILE_MAX_ATTEMPTS); the last try, and any permanent failure (4xx, refused address, too
 * large, bad URL), marks the file `failed` with the reason instead.
 */
function fileFetcher(deps: Deps, { batched }: { batched: boolean }) {
  const { limits, downloads } = deps.files;
  const store: BlobStore = new PgBlobStore(deps.db);
  const log = deps.log.child({ task: 'fetch_document_files' });

  return async (file: Claimed, job: Pick<Job, 'id' | 'attempts' | 'max_attempts' | 'priority'>): Promise<void> => {
    const { documentId } = file;
    const started = performance.now();
    const count = (outcome: 'ready' | 'failed' | 'none' | 'retry') => {
      deps.metrics.fileJobs.inc({ outcome });
      deps.metrics.fileJobDuration.observe({ outcome }, (performance.now() - started) / 1000);
    };
    const batch = job.id ?? `document-${documentId}`;
    const then: FollowUps = { priority: job.priority ?? 0, thumbnails: batch, ...(batched ? { announce: batch } : {}) };
    if (!file.sourceUrl) {
      await settleWithoutFile(deps, documentId);
      count('none');
      return;
    }
    const dir = await mkdtemp(join(tmpdir(), 'docrelay-file-'));
    try {
      const downloaded = await download(file.sourceUrl, join(dir, 'download'), limits, downloads);
      const outcome = await blobsOfDownload(downloaded, file.forcePdf, deps.files, (msg, err) => log.warn({ documentId, err }, msg));
      await storeAndSettleFile(deps, store, documentId, { status: 'ready', outcome }, then);
      count('ready');
      log.info({ documentId, sha256: outcome.main.sha256, size: outcome.main.size, type: outcome.main.contentType }, 'file ready');
    } catch (err) {
      const permanent = err instanceof FetchError && err.permanent;
      // Tries are counted per file; a job's own count also bounds them (one queued by an
      // older release), and its last attempt is the file's last.
      const attempts = Math.max(file.attempts, job.attempts);
      const lastAttempt = attempts >= FILE_MAX_ATTEMPTS || job.attempts >= job.max_attempts;
      // Anything else is our own failure (database, disk…): retried too, but not described to clients.
      const known = err instanceof FetchError;
      const reason = known ? err.message : 'internal error while storing the file';
      if (!permanent && !lastAttempt) {
        log.warn({ documentId, attempt: attempts, reason, err: known ? undefined : err }, 'file not fetched, will retry');
        await releaseFile(deps, documentId);
        count('retry');
        throw known ? err : new Error(reason);
      }
      if (!known) log.error({ documentId, err }, 'file failed on an internal error');
      const error = permanent ? reason : `${reason} (gave up after ${attempts} attempts)`;
      await storeAndSettleFile(deps, store, documentId, { status: 'failed', error }, then);
      count('failed');
      log.info({ documentId, error }, 'file failed');
    } finally {
      await rm(dir, { recursive: true, force: true });
    }
  };
}

/** A try that ended (to be retried): the file is no longer held by a running job. */
async function releaseFile(deps: Deps, documentId: number): Promise<void> {
  await deps.db.execute(sql`update document_files set claimed_at = null where document_id = ${documentId} and status = 'pending'`);
}

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
 * Type and conversion of a downloaded file; nothing is written yet. The thumbnail is drawn
 * later, off the announcement's path (render_thumbnails, files/thumbnail-job.ts), except
 * for a page converted to PDF: Chromium draws it in the same render.
 */
async function blobsOfDownload(
  file: Downloaded,
  forcePdf: boolean,
  { renderer }: FileServices,
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
  if (sniffed.mime !== 'text/html' || !forcePdf) return { main: downloaded };

  let rendered;
  try {
    rendered = await renderer.render(await readFile(file.path), { pdf: true, charset });
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
async function storeAndSettleFile(deps: Deps, store: BlobStore, documentId: number, s: Settlement, then: FollowUps = { priority: 0 }): Promise<void> {
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
      // A page whose conversion failed gets no thumbnail either (Chromium could not draw it).
      if (!thumbnail && !s.outcome.error && then.thumbnails) {
        // The files settled by one batch join one thumbnail job (a batch job: graphile-worker
        // merges the arrays added under one key while it waits, here for THUMBNAIL_DELAY_MS).
        await enqueue(tx, 'render_thumbnails', [documentId], {
          jobKey: thumbnailJobKey(then.thumbnails),
          jobKeyMode: 'preserve_run_at',
          runAt: new Date(Date.now() + THUMBNAIL_DELAY_MS),
          priority: then.priority,
        });
      }
    } else {
      await tx
        .update(documentFiles)
        .set({ status: 'failed', error: s.error, updatedAt: sql`now()` })
        .where(eq(documentFiles.documentId, documentId));
    }
    if (then.announce) {
      // The files settled by one batch join one announcement, announced in one transaction
      // (notify/announce.ts); one settled while it runs starts the next (jobs/enqueue.ts).
      await enqueue(tx, 'announce_documents', [documentId], { jobKey: announceBatchJobKey(then.announce), priority: then.priority });
    } else {
      await enqueue(tx, 'announce_document', { documentId }, { jobKey: announceJobKey(documentId), priority: then.priority });
    }
  });
}

/** What a settled file queues, at the priority of its batch (a backfill's after fresh bills'). */
interface FollowUps {
  priority: number;
  /** The batch whose thumbnail job this file joins; none: no thumbnail. */
  thumbnails?: string;
  /** The batch whose announcement this file joins; none: an announce_document job of its own. */
  announce?: string;
}
/** How long a thumbnail job waits for the other files of its batch. */
const THUMBNAIL_DELAY_MS = 2_000;

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
      await enqueueFileFetches(tx, [documentId]);
      return;
    }
    await tx
      .insert(documentFiles)
      .values({ documentId, status: 'none' })
      .onConflictDoUpdate({ target: documentFiles.documentId, set: { status: 'none' }, where: sql`${documentFiles.status} = 'pending'` });
    await enqueue(tx, 'announce_document', { documentId }, { jobKey: announceJobKey(documentId) });
  });
}
