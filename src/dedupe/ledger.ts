import { sql } from 'drizzle-orm';
import { sqlArray } from '../db/arrays.js';
import type { Tx } from '../db/client.js';
import { fingerprints, type DuplicateReason, type Fingerprint } from './fingerprint.js';

/**
 * The announcement ledger (db/schema/dedupe.ts) as the announce path uses it, in the
 * announcing transaction.
 *
 * Concurrency rests on the ledger's primary key (user, fingerprint), not on a lock per
 * user: a document claims its fingerprints by inserting them. Two copies of one bill
 * announced at the same moment insert the same key; the second insert waits for the first
 * transaction, then finds the row (or, if the first rolled back, takes it), so exactly one
 * of them announces. Only copies of the same bill wait on each other: a user's other bills
 * are announced in parallel, which a per-user lock would not allow (a first sync lists
 * hundreds of bills at once).
 */
export interface Match {
  /** The earlier document, or null when it was erased. */
  documentId: number | null;
  reason: DuplicateReason;
}

/**
 * An earlier announcement of any of these fingerprints, the file before the fields.
 * `self`'s own rows do not count: announcing a document again (a re-run job) is no repeat.
 */
export async function findAnnounced(tx: Tx, userId: number, prints: Fingerprint[], self: number): Promise<Match | null> {
  if (prints.length === 0) return null;
  const rows = await tx.execute<{ reason: DuplicateReason; document_id: number | null }>(sql`
    select reason, document_id::float8 as document_id from announcements
    where user_id = ${userId} and fingerprint = any(${sqlArray(prints.map((p) => p.value), 'text')})
      and document_id is distinct from ${self}
    order by reason = 'file' desc, announced_at
    limit 1`);
  const [r] = rows;
  return r ? { documentId: r.document_id === null ? null : Number(r.document_id), reason: r.reason } : null;
}

async function insertPrints(tx: Tx, userId: number, documentId: number, prints: Fingerprint[]): Promise<string[]> {
  if (prints.length === 0) return [];
  // In the order of the keys: two claims then never wait on each other in a circle.
  const out = await tx.execute<{ fingerprint: string }>(sql`
    insert into announcements (user_id, fingerprint, reason, document_id)
    select ${userId}, fingerprint, reason, ${documentId}
    from unnest(${sqlArray(prints.map((p) => p.value), 'text')}, ${sqlArray(prints.map((p) => p.reason), 'text')}) as x(fingerprint, reason)
    order by fingerprint
    on conflict (user_id, fingerprint) do nothing
    returning fingerprint`);
  return out.map((r) => r.fingerprint);
}

/**
 * Claim the announcement of a bill for this document: null when it is the first (its
 * fingerprints are now in the ledger, and it is to be announced), else the earlier
 * announcement it repeats (and nothing of it is kept in the ledger).
 */
export async function claimAnnouncement(tx: Tx, userId: number, documentId: number, prints: Fingerprint[]): Promise<Match | null> {
  const inserted = await insertPrints(tx, userId, documentId, prints);
  if (inserted.length === prints.length) return null;
  // A key was there already: another document's (committed, as the insert waited for it), or this one's own from an earlier run.
  const match = await findAnnounced(tx, userId, prints, documentId);
  if (match && inserted.length > 0) {
    await tx.execute(sql`
      delete from announcements
      where user_id = ${userId} and document_id = ${documentId} and fingerprint = any(${sqlArray(inserted, 'text')})`);
  }
  return match;
}

/** Record the fingerprints of a document announced anyway (those already there stay as they are). */
export async function recordAnnounced(tx: Tx, userId: number, documentId: number, prints: Fingerprint[]): Promise<void> {
  await insertPrints(tx, userId, documentId, prints);
}

/** Mark a document as the repeat of an earlier one. */
export async function markDuplicate(tx: Tx, documentId: number, match: Match): Promise<void> {
  await tx.execute(sql`
    update documents set duplicate_of = ${match.documentId}, duplicate_reason = ${match.reason}
    where id = ${documentId}`);
}

/** The fingerprints of a stored document, from its row, its subscription's number and its file. */
export function documentFingerprints(
  key: Buffer,
  d: { issuer: string | null; number: string | null; date: string | null; totalAmount: number | null; currency: string | null },
  subscriptionNumber: string | null,
  file: { status: string; sha256: string | null; originalSha256: string | null } | null,
): Fingerprint[] {
  // The bytes as downloaded: an HTML bill converted to PDF is matched on its HTML.
  const fileSha256 = file?.status === 'ready' ? (file.originalSha256 ?? file.sha256) : null;
  return fingerprints(key, { fileSha256, issuer: d.issuer, subscriptionNumber, number: d.number, date: d.date, totalAmount: d.totalAmount, currency: d.currency });
}
