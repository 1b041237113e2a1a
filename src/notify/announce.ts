import { eq } from 'drizzle-orm';
import { presentDocument, presentSubscription } from '../present/presenters.js';
import type { Tx } from '../db/client.js';
import { documentFiles, documents, emailDeliveries, emailSettings, subscriptions } from '../db/schema/index.js';
import { redactQueryError } from '../db/redact.js';
import { ledgerKey } from '../dedupe/fingerprint.js';
import { claimAnnouncement, documentFingerprints, findAnnounced, markDuplicate, recordAnnounced, type Match } from '../dedupe/ledger.js';
import type { Deps } from '../deps.js';
import { recordEvents, type NewEvent } from '../events/record.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { emailJobKey } from '../jobs/keys.js';
import { documentTypesToNotify, readSettings, type Settings } from '../settings.js';
import { mailMessageId } from './mail.js';

/**
 * announce_document — one document whose file is settled, as releases before batches
 * queued it (and as the sync still does for a document without a url, and the stuck-file
 * sweep for a file it fails), so `document.created` always carries the file's final state.
 */
export const announceDocument: JobHandlerFactory<'announce_document'> = (deps) => async ({ documentId }, helpers) => {
  await deps.db.transaction((tx) => announce(tx, deps, documentId, { force: false, priority: helpers?.job?.priority ?? 0 }));
};

/**
 * announce_documents — a graphile-worker batch job: the documents of one file batch whose
 * files are settled (files/tasks.ts adds each to its batch's job as it settles; those
 * settled while the job waits join it). They are announced in one transaction, so a batch
 * costs one commit, one fan-out of its events and one upsert of their delivery jobs,
 * instead of as many of each as it has documents (and as many jobs of the main pool).
 *
 * The batch is all or nothing, like each announcement. If it fails — one document whose
 * announcement fails, or a deadlock with another batch claiming the same bills in the
 * other order — each document is announced again in a transaction of its own, and the job
 * returns one outcome per entry: graphile-worker retries only those that failed, so one
 * bad document holds no other. Announcing is idempotent (the event's dedupe key, the
 * ledger, the mail row's key), so a document announced twice is announced once.
 *
 * The job's priority (its file batch's: a backfill's after fresh bills') goes to the
 * delivery jobs of its events.
 */
export const announceDocuments: JobHandlerFactory<'announce_documents'> = (deps) => async (documentIds, helpers) => {
  const priority = helpers?.job?.priority ?? 0;
  // In id order, which spares two batches holding the same documents a deadlock; batches of
  // different documents whose bills share ledger rows may still take them in another order:
  // such a deadlock ends in the one-by-one fallback below.
  const ids = [...new Set(documentIds)].sort((a, b) => a - b);
  try {
    await deps.db.transaction(async (tx) => {
      const batch: AnnounceBatch = { settings: await readSettings(tx), mail: new Map(), events: [] };
      for (const id of ids) await announce(tx, deps, id, { force: false, priority }, batch);
      await recordEvents(tx, batch.events, { priority });
    });
    return;
  } catch (err) {
    // The query's values stay out of the log (db/redact.ts).
    deps.log.warn({ err: redactQueryError(err), documents: ids.length }, 'announcing a batch failed; announcing its documents one by one');
  }
  const alone = new Map<number, Promise<void>>();
  let previous: Promise<unknown> = Promise.resolve();
  for (const id of ids) {
    const done = previous.catch(() => {}).then(() => deps.db.transaction(async (tx) => void (await announce(tx, deps, id, { force: false, priority }))));
    alone.set(id, done);
    previous = done;
  }
  return documentIds.map((id) => alone.get(id)!);
};

/**
 * What the announcements of one batch share in their transaction: the settings read once,
 * each user's mail settings, and the events, recorded together at the end.
 */
interface AnnounceBatch {
  settings: Settings;
  mail: Map<number, typeof emailSettings.$inferSelect | undefined>;
  events: NewEvent[];
}

async function mailSettingsOf(tx: Tx, userId: number, batch?: AnnounceBatch) {
  const [mail] = await tx.select().from(emailSettings).where(eq(emailSettings.userId, userId));
  batch?.mail.set(userId, mail);
  return mail;
}

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
 *
 * In a batch (announceDocuments), the events are left in `batch.events` for the batch to
 * record at its end, in the same transaction (`webhook` then says one is to be recorded);
 * `priority` is that of the delivery jobs of the events.
 */
export async function announce(
  tx: Tx,
  deps: Deps,
  documentId: number,
  opts: { force: boolean; priority?: number },
  batch?: AnnounceBatch,
): Promise<AnnounceOutcome> {
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
  const settings = batch?.settings ?? (await readSettings(tx));
  const notifyTypes = documentTypesToNotify(settings);
  const mail = batch?.mail.has(d.userId) ? batch.mail.get(d.userId) : await mailSettingsOf(tx, d.userId, batch);
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

  // In a batch, the events are recorded with the others' at its end (same transaction).
  const record = async (events: NewEvent[]) => {
    if (batch) {
      batch.events.push(...events);
      return true;
    }
    return (await recordEvents(tx, events, { priority: opts.priority })).length > 0;
  };

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
      if (notified) await record([eventOf('document.duplicate')]);
      return { status: 'duplicate', of: match };
    }
  } else if (notified || mailed) {
    await recordAnnounced(tx, d.userId, d.id, prints);
  }

  const webhook = notified ? await record([eventOf('document.created')]) : false;
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
