import { Readable } from 'node:stream';
import { eq, sql } from 'drizzle-orm';
import { documentFiles, documents, emailDeliveries, subscriptions } from '../db/schema/index.js';
import { PgBlobStore } from '../blobs/store.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { signedFileUrl } from '../lib/file-links.js';
import { attachmentName, composeMail } from './mail.js';

/** SMTP reply codes 5xx are permanent refusals (bad recipient, policy): trying again cannot help. */
export const isPermanent = (err: unknown) => {
  const code = (err as { responseCode?: number }).responseCode;
  return typeof code === 'number' && code >= 500 && code < 600;
};

/**
 * send_document_email — mail one announced document (its `email_deliveries` row was
 * written with the event). A row already `sent` is never sent again; a transient SMTP
 * error throws, and graphile-worker retries with its exponential backoff (same Message-ID
 * each time). Without SMTP_URL the row says `smtp_not_configured` and nothing is retried.
 *
 * Each attempt is recorded (`sending`, attempts + 1) before the SMTP exchange. A job that
 * finds its row still `sending` follows a worker that stopped mid-attempt: the SMTP server
 * may or may not have accepted that mail, and SMTP gives no way to ask. It is sent again
 * with the same Message-ID (nothing lost; clients that collapse by Message-ID show one) and
 * the row says `possible_duplicate`, which GET /users/{u}/email-delivery/mails shows.
 */
export const sendDocumentEmail: JobHandlerFactory<'send_document_email'> = (deps) => async ({ documentId }, helpers) => {
  const [delivery] = await deps.db.select().from(emailDeliveries).where(eq(emailDeliveries.documentId, documentId));
  if (!delivery || (delivery.status !== 'pending' && delivery.status !== 'sending')) return;
  const outcomeUnknown = delivery.status === 'sending';
  const settle = (status: 'sent' | 'failed' | 'pending', error: string | null) => {
    deps.metrics.mails.inc({ outcome: status === 'pending' ? 'retry' : status });
    return deps.db
      .update(emailDeliveries)
      .set({ status, error, sentAt: status === 'sent' ? sql`now()` : null, updatedAt: sql`now()` })
      .where(eq(emailDeliveries.documentId, documentId));
  };

  const mailer = deps.notify.mailer;
  if (!mailer) {
    await settle('failed', 'smtp_not_configured');
    return;
  }
  const [row] = await deps.db
    .select({ document: documents, file: documentFiles, label: subscriptions.label })
    .from(documents)
    .innerJoin(subscriptions, eq(subscriptions.id, documents.subscriptionId))
    .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
    .where(eq(documents.id, documentId));
  if (!row) return; // erased since
  const { document: d, file } = row;

  // The file as served (the converted PDF when there is one; sha256 names it).
  // An HTML page (a bill not converted to PDF) is linked, not attached: opened from a mail
  // it would run in a browser outside the sandbox /files serves it with.
  const attachments = [];
  const isWebPage = file?.status === 'ready' && /^text\/html\b/i.test(file.contentType ?? '');
  if (file?.status === 'ready' && file.sha256 && !isWebPage) {
    const contentType = file.contentType ?? 'application/octet-stream';
    // Streamed from the store chunk by chunk: a 25 MB bill is never whole in memory.
    const content = Readable.from(new PgBlobStore(deps.db).read(file.sha256));
    attachments.push({ filename: attachmentName(d, contentType), content, contentType });
  }
  const { subject, text } = composeMail(d, row.label, {
    attached: attachments.length > 0,
    status: file?.status ?? 'none',
    webPage: isWebPage ? { link: signedFileUrl(deps.links, 'file', d.id), validHours: Math.max(1, Math.round(deps.links.ttlS / 3600)) } : undefined,
  });

  await deps.db
    .update(emailDeliveries)
    .set({
      status: 'sending',
      attempts: sql`${emailDeliveries.attempts} + 1`,
      ...(outcomeUnknown ? { possibleDuplicate: true } : {}),
      updatedAt: sql`now()`,
    })
    .where(eq(emailDeliveries.documentId, documentId));
  if (outcomeUnknown) deps.log.warn({ documentId }, 'document email: the previous attempt stopped mid-send; sending again with the same Message-ID');

  try {
    await mailer.sendMail({
      from: deps.config.mailFrom,
      to: delivery.to,
      subject,
      text,
      messageId: delivery.messageId,
      attachments,
    });
  } catch (err) {
    const message = err instanceof Error ? err.message : String(err);
    const lastTry = helpers.job.attempts >= helpers.job.max_attempts;
    if (isPermanent(err) || lastTry) {
      await settle('failed', message);
      deps.log.warn({ documentId, error: message }, 'document email failed');
      return;
    }
    await settle('pending', message);
    throw err;
  }
  await settle('sent', null);
};
