import { sql } from 'drizzle-orm';
import { bigint, index, pgTable, primaryKey, text, timestamp } from 'drizzle-orm/pg-core';
import { documents, users } from './archive.js';

/**
 * The announcement ledger (README, "A bill is announced once"): one row per fingerprint of each bill announced to a
 * user (dedupe/fingerprint.ts). It holds keyed hashes only, so it outlives the erasure of
 * the connection that brought the bill (`document_id` then turns null: "erased") and goes
 * with the user (USER_DELETED). The primary key makes a fingerprint announced once per user.
 */
export const announcements = pgTable(
  'announcements',
  {
    userId: bigint('user_id', { mode: 'number' })
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    /** hex HMAC-SHA256 of the file's sha256 or of the normalised fields. */
    fingerprint: text('fingerprint').notNull(),
    /** 'file' | 'fields': the duplicate_reason of a document that matches this row. */
    reason: text('reason').notNull(),
    /** The document announced; null once it was erased. */
    documentId: bigint('document_id', { mode: 'number' }).references(() => documents.id, { onDelete: 'set null' }),
    announcedAt: timestamp('announced_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [
    primaryKey({ columns: [t.userId, t.fingerprint] }),
    // Erasing documents sets their ledger rows' document_id to null: found by this index.
    index('announcements_document_id_idx').on(t.documentId).where(sql`document_id is not null`),
  ],
);
