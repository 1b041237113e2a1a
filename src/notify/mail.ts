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

export function composeMail(
  d: MailDocument,
  subscriptionLabel: string | null,
  /** `webPage`: an HTML file (not converted to PDF), linked rather than attached. */
  file: { attached: boolean; status: string; webPage?: { link: string; validHours: number } },
) {
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
    file.attached
      ? 'The file is attached.'
      : file.webPage
        ? `The document is a web page (HTML), not attached: a mail client would open it in a browser outside any sandbox. Open it here (the link works for ${file.webPage.validHours} h): ${file.webPage.link}`
        : file.status === 'failed'
          ? 'The file could not be downloaded.'
          : 'This document has no file.',
  ].filter((l): l is string => typeof l === 'string');
  return { subject, text: lines.join('\n') + '\n' };
}

const extensions: Record<string, string> = {
  'application/pdf': 'pdf',
  'text/html': 'html',
  'image/png': 'png',
  'image/jpeg': 'jpg',
};

/**
 * A safe attachment file name: the document's name with its letters and digits in any
 * script (Cyrillic, Greek, accents…), `.`, `-` and `_`, and the type's extension. Nothing
 * else survives — no slash, quote or control character — and it is handed to nodemailer
 * as it is: nodemailer encodes a non-ASCII name itself (RFC 2231 `filename*`).
 * NFKC first, so that look-alikes such as a fullwidth solidus become what they look like
 * (and are dropped) rather than pass as letters.
 */
export function attachmentName(d: { id: number; name: string | null }, contentType: string): string {
  const cleaned = (d.name ?? '').normalize('NFKC').replace(/[^\p{L}\p{M}\p{N}._\- ]+/gu, '').replace(/^[.\s]+/, '').trim().replace(/\s+/g, '_');
  const base = Array.from(cleaned).slice(0, 80).join('') || `document-${d.id}`;
  const ext = extensions[contentType.split(';')[0].trim()] ?? 'bin';
  return base.toLowerCase().endsWith(`.${ext}`) ? base : `${base}.${ext}`;
}
