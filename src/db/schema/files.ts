import { bigint, customType, index, integer, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';
import { sql } from 'drizzle-orm';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const bytea = customType<{ data: Buffer }>({ dataType: () => 'bytea' });

/** The file state of one document (a Document's `file` in /openapi.json). */
export const documentFiles = pgTable(
  'document_files',
  {
    /** References documents (cascade), checked by trigger: see db/schema/archive.ts. */
    documentId: bigint('document_id', { mode: 'number' }).primaryKey(),
    /** 'pending' | 'ready' | 'failed' | 'none' */
    status: text('status').notNull(),
    error: text('error'),
    sha256: text('sha256'),
    contentType: text('content_type'),
    size: bigint('size', { mode: 'number' }),
    /** The HTML as downloaded, kept when it was converted to PDF. */
    originalSha256: text('original_sha256'),
    thumbnailSha256: text('thumbnail_sha256'),
    updatedAt: ts('updated_at').notNull().defaultNow(),
    /** Tries at fetching this file so far (FILE_MAX_ATTEMPTS), whichever job made them. */
    attempts: integer('attempts').notNull().default(0),
    /** When the try under way began; null between tries. One open for long belongs to a dead worker (files/sweep.ts). */
    claimedAt: ts('claimed_at'),
  },
  (t) => [
    // The stuck-file sweep looks only at pending files.
    index('document_files_pending_claimed_idx').on(t.claimedAt).where(sql`status = 'pending'`),
    // The blob sweep after erasure (blobs/store.ts) looks blobs up by every reference column.
    // Only rows that hold one are indexed: a new file row has none, and a sync inserting
    // 10,000 of them would otherwise write 30,000 index entries of nulls (README "Performance").
    index('document_files_sha256_idx').on(t.sha256).where(sql`sha256 is not null`),
    index('document_files_original_sha256_idx').on(t.originalSha256).where(sql`original_sha256 is not null`),
    index('document_files_thumbnail_sha256_idx').on(t.thumbnailSha256).where(sql`thumbnail_sha256 is not null`),
  ],
);

/** Content-addressed blobs, stored in chunks so that neither write nor read needs the whole file in memory. */
export const blobs = pgTable('blobs', {
  sha256: text('sha256').primaryKey(),
  contentType: text('content_type').notNull(),
  size: bigint('size', { mode: 'number' }).notNull(),
  createdAt: ts('created_at').notNull().defaultNow(),
});

export const blobChunks = pgTable(
  'blob_chunks',
  {
    sha256: text('sha256')
      .notNull()
      .references(() => blobs.sha256, { onDelete: 'cascade' }),
    seq: integer('seq').notNull(),
    data: bytea('data').notNull(),
  },
  (t) => [primaryKey({ columns: [t.sha256, t.seq] })],
);
