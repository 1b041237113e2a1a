import { eq } from 'drizzle-orm';
import { presentDocument, presentSubscription } from '../present/presenters.js';
import { documentFiles, documents, emailDeliveries, emailSettings, subscriptions } from '../db/schema/index.js';
import { recordEvents } from '../events/record.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { emailJobKey } from '../jobs/keys.js';
import { documentTypesToNotify, readSettings } from '../settings.js';
import { mailMessageId } from './mail.js';

/**
 * announce_document — queued by the file job once the document's file is settled (ready,
 * failed or none), so `document.created` always carries the file's final state.
 *
 * In one transaction: the `document.created` event (its dedupe key makes a second run, or
 * a second job, record nothing — a document is never announced twice) with its messages,
 * and the email delivery row with its job (the row's primary key does the same for mail).
 */
export const announceDocument: JobHandlerFactory<'announce_document'> = (deps) => async ({ documentId }) => {
  await deps.db.transaction(async (tx) => {
    const [row] = await tx
      .select({ document: documents, file: documentFiles, subscription: subscriptions })
      .from(documents)
      .innerJoin(subscriptions, eq(subscriptions.id, documents.subscriptionId))
      .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
      .where(eq(documents.id, documentId));
    if (!row) return; // erased since
    const { document: d, file, subscription: s } = row;
    const notifyTypes = documentTypesToNotify(await readSettings(tx));

    if (d.type !== null && notifyTypes.includes(d.type)) {
      await recordEvents(tx, [
        {
          type: 'document.created',
          dedupeKey: `document.created:${d.id}`,
          userId: d.userId,
          connectionId: s.connectionId,
          data: {
            document: presentDocument(d, file, deps.links),
            subscription: presentSubscription(s),
            connection_id: s.connectionId,
            user_id: d.userId,
          },
        },
      ]);
    }

    const [mail] = await tx.select().from(emailSettings).where(eq(emailSettings.userId, d.userId));
    const mailTypes = mail?.documentTypes ?? notifyTypes;
    if (mail && d.type !== null && mailTypes.includes(d.type)) {
      const created = await tx
        .insert(emailDeliveries)
        .values({ documentId: d.id, userId: d.userId, to: mail.to, messageId: mailMessageId(d.id, d.userId), status: 'pending' })
        .onConflictDoNothing()
        .returning({ documentId: emailDeliveries.documentId });
      if (created.length) await enqueue(tx, 'send_document_email', { documentId: d.id }, { jobKey: emailJobKey(d.id) });
    }
  });
};
