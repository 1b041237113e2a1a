import { createReadStream } from 'node:fs';
import { and, eq, sql } from 'drizzle-orm';
import { sqlArray } from '../db/arrays.js';
import type { Db, Tx } from '../db/client.js';
import { blobChunks, blobs } from '../db/schema/index.js';

/**
 * Content-addressed blob storage: a file is stored once per sha256, and
 * two documents with the same bytes share one blob. PostgreSQL by default, behind this
 * interface so that an S3-compatible store can take its place (it would upload the object
 * in `put` and keep only the metadata row in the transaction).
 */

export interface BlobInfo {
  sha256: string;
  contentType: string;
  size: number;
}

export interface BlobStore {
  /**
   * Store the bytes under `info.sha256` unless that blob exists. On the caller's
   * transaction, so that the blob commits with the row that references it.
   * `source` is a file path (streamed) or bytes already in memory (thumbnails).
   */
  put(tx: Tx, info: BlobInfo, source: string | Buffer): Promise<void>;
  stat(sha256: string): Promise<BlobInfo | null>;
  /**
   * The bytes, read lazily chunk by chunk: never the whole file in memory; with `range`,
   * only bytes `start` … `end` (inclusive).
   */
  read(sha256: string, range?: { start: number; end: number }): AsyncIterable<Buffer>;
}

/** Chunks small enough for one query each, large enough for few round trips. */
export const CHUNK_BYTES = 512 * 1024;

/**
 * Writers of blob references and the sweep below take this advisory lock (writers shared,
 * the sweep exclusive), so the sweep can never delete a blob that a transaction in flight
 * is about to reference, and a writer never trusts a blob that a sweep is deleting.
 */
const BLOB_LOCK = 4_242_003;

export class PgBlobStore implements BlobStore {
  constructor(private readonly db: Db) {}

  async put(tx: Tx, info: BlobInfo, source: string | Buffer): Promise<void> {
    await tx.execute(sql`select pg_advisory_xact_lock_shared(${BLOB_LOCK})`);
    // A concurrent writer of the same bytes makes this wait for its commit, then do nothing.
    const created = await tx
      .insert(blobs)
      .values({ sha256: info.sha256, contentType: info.contentType, size: info.size })
      .onConflictDoNothing()
      .returning({ sha256: blobs.sha256 });
    if (created.length === 0) return;
    let seq = 0;
    const chunks: AsyncIterable<Buffer> | Buffer[] =
      typeof source === 'string' ? createReadStream(source, { highWaterMark: CHUNK_BYTES }) : splitBuffer(source);
    for await (const data of chunks) {
      await tx.insert(blobChunks).values({ sha256: info.sha256, seq: seq++, data });
    }
  }

  async stat(sha256: string): Promise<BlobInfo | null> {
    const [row] = await this.db
      .select({ sha256: blobs.sha256, contentType: blobs.contentType, size: blobs.size })
      .from(blobs)
      .where(eq(blobs.sha256, sha256));
    return row ?? null;
  }

  async *read(sha256: string, range?: { start: number; end: number }): AsyncIterable<Buffer> {
    if (range) {
      yield* this.readRange(sha256, range.start, range.end);
      return;
    }
    for (let seq = 0; ; seq++) {
      const [row] = await this.db
        .select({ data: blobChunks.data })
        .from(blobChunks)
        .where(and(eq(blobChunks.sha256, sha256), eq(blobChunks.seq, seq)));
      if (!row) return;
      yield row.data;
    }
  }

  /**
   * The chunks' lengths first (octet_length reads a TOAST pointer's size, not the data),
   * then only the chunks that overlap the range, each cut to it.
   */
  private async *readRange(sha256: string, start: number, end: number): AsyncIterable<Buffer> {
    const lengths = await this.db
      .select({ seq: blobChunks.seq, length: sql<number>`octet_length(${blobChunks.data})`.mapWith(Number) })
      .from(blobChunks)
      .where(eq(blobChunks.sha256, sha256))
      .orderBy(blobChunks.seq);
    let offset = 0;
    for (const { seq, length } of lengths) {
      const from = offset;
      offset += length;
      if (offset <= start) continue;
      if (from > end) return;
      const [row] = await this.db
        .select({ data: blobChunks.data })
        .from(blobChunks)
        .where(and(eq(blobChunks.sha256, sha256), eq(blobChunks.seq, seq)));
      if (!row) return;
      yield row.data.subarray(Math.max(0, start - from), Math.min(length, end - from + 1));
    }
  }
}

function splitBuffer(buf: Buffer): Buffer[] {
  const out: Buffer[] = [];
  for (let i = 0; i < buf.length; i += CHUNK_BYTES) out.push(buf.subarray(i, i + CHUNK_BYTES));
  return out;
}

/**
 * Of `candidates` (the blobs of files just erased), delete those no document file
 * references any more: the sweep looks only at what the erasure let go, so its cost
 * follows the erased rows, not the size of the store. Takes the blob lock exclusively
 * first: the DELETE's snapshot is then taken after every writer in flight has committed,
 * so a blob just stored for a new document is seen as referenced. One NOT EXISTS per
 * column (rather than one with ORs) lets each become an anti-join on its own index.
 */
export async function deleteUnreferencedBlobs(tx: Tx, candidates: string[]): Promise<void> {
  if (candidates.length === 0) return;
  await tx.execute(sql`select pg_advisory_xact_lock(${BLOB_LOCK})`);
  await tx.execute(sql`
    delete from blobs b
    where b.sha256 = any(${sqlArray(candidates, 'text')})
      and not exists (select 1 from document_files f where f.sha256 = b.sha256)
      and not exists (select 1 from document_files f where f.original_sha256 = b.sha256)
      and not exists (select 1 from document_files f where f.thumbnail_sha256 = b.sha256)`);
}
