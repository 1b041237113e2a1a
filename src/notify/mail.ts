/**
 * The mail of one announced document — pure: what it says, its name and its attachment's
 * name. The Message-ID is derived from the document and its user, so a retried send is
 * the same message (mail clients and servers collapse duplicates by Message-ID).
 */

export const mailMessageId = (documentId: number, userId: number) => `<document-${documentId}.user-${userId}@docrelay>`;

export interface MailDocument {
  id: number;
  name: string | null;
  type: string | null;
  issuer: string | null;
  totalAmount: number | null;
  currency: string | null;
  date: string | null;
  duedate: string | null;
  number: string | null;
}

export function formatAmount(amount: number | null, currency: string | null): string | null {
  if (amount === null) return null;
  try {
    if (currency) return new Intl.NumberFormat('en-GB', { style: 'currency', currency }).format(amount);
  } catch {
    // not an ISO 4217 code: fall through to the plain form
  }
  return `${amount.toFixed(2)}${currency ? ` ${currency}` : ''}`;
}

export function composeMail(d: MailDocument, subscriptionLabel: string | null, file: { attached: boolean; status: string }) {
  const title = d.name ?? `Document ${d.id}`;
  const amount = formatAmount(d.totalAmount, d.currency);
  const subject = [d.issuer, title, amount, d.date].filter(Boolean).join(' — ');
  const lines = [
    `A new ${d.type ?? 'document'} is available.`,
    '',
    `Document: ${title}`,
    d.issuer && `Issuer: ${d.issuer}`,
    amount && `Amount: ${amount}`,
    d.date && `Date: ${d.date}`,
    d.duedate && `Due date: ${d.duedate}`,
    d.number && `Number: ${d.number}`,
    subscriptionLabel && `Subscription: ${subscriptionLabel}`,
    '',
    file.attached ? 'The file is attached.' : file.status === 'failed' ? 'The file could not be downloaded.' : 'This document has no file.',
  ].filter((l): l is string => typeof l === 'string');
  return { subject, text: lines.join('\n') + '\n' };
}

const extensions: Record<string, string> = {
  'application/pdf': 'pdf',
  'text/html': 'html',
  'image/png': 'png',
  'image/jpeg': 'jpg',
};

/** A safe attachment file name: the document's name, letters and digits kept, and the type's extension. */
export function attachmentName(d: { id: number; name: string | null }, contentType: string): string {
  const base = (d.name ?? `document-${d.id}`).normalize('NFKD').replace(/[^\w.\- ]+/g, '').replace(/^[.\s]+/, '').trim().replace(/\s+/g, '_').slice(0, 80) || `document-${d.id}`;
  const ext = extensions[contentType.split(';')[0].trim()] ?? 'bin';
  return base.toLowerCase().endsWith(`.${ext}`) ? base : `${base}.${ext}`;
}
