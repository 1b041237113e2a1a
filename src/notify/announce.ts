import { eq } from 'drizzle-orm';
import { presentDocument, presentSubscription } from '../present/presenters.js';
import type { Tx } from '../db/client.js';
import { documentFiles, documents, emailDeliveries, emailSettings, subscriptions } from '../db/schema/index.js';
import { ledgerKey } from '../dedupe/fingerprint.js';
import { claimAnnouncement, documentFingerprints, findAnnounced, markDuplicate, recordAnnounced, type Match } from '../dedupe/ledger.js';
import type { Deps } from '../deps.js';
import { recordEvents } from '../events/record.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { emailJobKey } from '../jobs/keys.js';
import { documentTypesToNotify, readSettings } from '../settings.js';
import { mailMessageId } from './mail.js';

/**
 * announce_document — queued by the file job once the document's file is settled (ready,
 * failed or none), so `document.created` always carries the file's final state.
 */
export const announceDocument: JobHandlerFactory<'announce_document'> = (deps) => async ({ documentId }) => {
  await deps.db.transaction((tx) => announce(tx, deps, documentId, { force: false }));
};

export type AnnounceOutcome =
  | { status: 'gone' }
  | { status: 'duplicate'; of: Match }
  | { status: 'announced'; webhook: boolean; email: boolean };

/**
 * Announce one document, in the caller's transaction: the `document.created` event (its
 * dedupe key makes a second run, or a second job, record nothing — a document is never
 * announced twice) with its messages, and the email delivery row with its job (the row's
 * primary key does the same for mail).
 *
 * Unless `force` (the admin's POST …/announce) or `notify.dedupe` = "0", a document that
 * repeats a bill already announced to its user (dedupe/) is marked `duplicate_of` instead,
 * and only the opt-in `document.duplicate` is recorded: no `document.created`, no mail.
 * The claim on the ledger and the announcement commit together, so two copies of one bill
 * announced at once make one announcement (dedupe/ledger.ts).
 */
export async function announce(tx: Tx, deps: Deps, documentId: number, opts: { force: boolean }): Promise<AnnounceOutcome> {
  const [row] = await tx
    .select({ document: documents, file: documentFiles, subscription: subscriptions })
    .from(documents)
    .innerJoin(subscriptions, eq(subscriptions.id, documents.subscriptionId))
    .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
    .where(eq(documents.id, documentId))
    // An erasure running now holds the row: wait for it, then find nothing (no event, no
    // mail). One that starts later waits for this commit and erases what we record.
    .for('key share', { of: documents });
  if (!row) return { status: 'gone' }; // erased since
  const { file, subscription: s } = row;
  let d = row.document;
  const settings = await readSettings(tx);
  const notifyTypes = documentTypesToNotify(settings);
  const [mail] = await tx.select().from(emailSettings).where(eq(emailSettings.userId, d.userId));
  const mailTypes = mail?.documentTypes ?? notifyTypes;
  const notified = d.type !== null && notifyTypes.includes(d.type);
  const mailed = mail !== undefined && d.type !== null && mailTypes.includes(d.type);
  const eventOf = (type: 'document.created' | 'document.duplicate') => ({
    type,
    dedupeKey: `${type}:${d.id}`,
    userId: d.userId,
    connectionId: s.connectionId,
    data: {
      document: presentDocument(d, file, deps.links),
      subscription: presentSubscription(s),
      connection_id: s.connectionId,
      user_id: d.userId,
    },
  });

  // The ledger holds what was announced, by event or by mail: a repeat of it is not announced again.
  const prints = documentFingerprints(ledgerKey(deps.config.linkSecret), d, s.number, file);
  if (!opts.force && settings['notify.dedupe'] === '1') {
    const match: Match | null = d.duplicateReason
      ? { documentId: d.duplicateOf, reason: d.duplicateReason as Match['reason'] } // found a repeat before (a re-run job): it stays one
      : notified || mailed
        ? await claimAnnouncement(tx, d.userId, d.id, prints)
        : await findAnnounced(tx, d.userId, prints, d.id);
    if (match) {
      if (!d.duplicateReason) {
        await markDuplicate(tx, d.id, match);
        d = { ...d, duplicateOf: match.documentId, duplicateReason: match.reason };
      }
      if (notified) await recordEvents(tx, [eventOf('document.duplicate')]);
      return { status: 'duplicate', of: match };
    }
  } else if (notified || mailed) {
    await recordAnnounced(tx, d.userId, d.id, prints);
  }

  const webhook = notified ? (await recordEvents(tx, [eventOf('document.created')])).length > 0 : false;
  let email = false;
  if (mailed) {
    const created = await tx
      .insert(emailDeliveries)
      .values({ documentId: d.id, userId: d.userId, to: mail.to, messageId: mailMessageId(d.id, d.userId), status: 'pending' })
      .onConflictDoNothing()
      .returning({ documentId: emailDeliveries.documentId });
    if (created.length) await enqueue(tx, 'send_document_email', { documentId: d.id }, { jobKey: emailJobKey(d.id) });
    email = created.length > 0;
  }
  return { status: 'announced', webhook, email };
}
