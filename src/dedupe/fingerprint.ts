import { createHmac } from 'node:crypto';

/**
 * The fingerprints of a bill (README, "A bill is announced once"): what tells
 * "the same bill" apart from "another bill" when the aggregator sends it again under new
 * connection, subscription and document ids. Pure: no database, no clock.
 *
 * Two fingerprints, either one matching means the same bill:
 * - `file`: the sha256 of the file as the provider served it (before any HTML→PDF
 *   conversion: a rendered PDF carries its own creation time, the download does not);
 * - `fields`: the normalised tuple (issuer, else subscription number; document number;
 *   date; total amount; currency), only when every part of it is there. Each part is
 *   needed: the number alone repeats across issuers (`2026-11-001`), a date and an amount
 *   repeat every month, and without the currency 42.50 € and 42.50 £ would be one bill.
 *   A document the aggregator sends without a number, a date, an amount or a currency
 *   gets no fields fingerprint: it can only match by its file. The label, the due date,
 *   the VAT split and the name are left out on purpose: providers rename and re-round
 *   them between syncs of the same bill.
 *
 * Both are keyed hashes (HMAC-SHA256 with a server key), not plain hashes: the tuple has
 * so little entropy (a date, an amount, a short number) that a plain hash could be
 * reversed by trying every value, and the ledger would then reveal what the user paid.
 * With the key kept out of the database, a copy of the ledger tells nothing.
 */
export type DuplicateReason = 'file' | 'fields';

export interface BillFacts {
  /** The downloaded file's sha256 (hex), when the file is ready. */
  fileSha256: string | null;
  issuer: string | null;
  subscriptionNumber: string | null;
  number: string | null;
  date: string | null;
  totalAmount: number | null;
  currency: string | null;
}

export interface Fingerprint {
  reason: DuplicateReason;
  /** hex HMAC-SHA256 */
  value: string;
}

/** The ledger's key, derived from a server secret (LINK_SECRET) so that it never sits in the database. */
export function ledgerKey(serverSecret: string): Buffer {
  return createHmac('sha256', serverSecret).update('docrelay/dedupe-ledger/v1').digest();
}

/** Text as people would compare it: Unicode-normalised, case-folded, one space between words. */
export function normaliseText(s: string | null): string | null {
  if (s === null) return null;
  const t = s.normalize('NFKC').toLowerCase().replace(/\s+/g, ' ').trim();
  return t === '' ? null : t;
}

/**
 * A document or subscription number: case-folded, without spaces ("FA 023 315" is
 * "fa023315"). Dashes, dots and leading zeros are kept: "12-3" and "1-23" are two numbers.
 */
export function normaliseNumber(s: string | null): string | null {
  const t = normaliseText(s);
  if (t === null) return null;
  const compact = t.replace(/\s/g, '');
  return compact === '' ? null : compact;
}

/**
 * The amount exactly as a number (42.5 and 42.50 are one amount; 42.5 and 42.51 are two).
 * Not rounded to the cent: rounding could make two different amounts one.
 */
export function normaliseAmount(n: number | null): string | null {
  if (n === null || !Number.isFinite(n)) return null;
  return String(n === 0 ? 0 : n);
}

/** The normalised tuple, or null when the aggregator did not give enough of it. */
export function fieldsTuple(b: BillFacts): string | null {
  const issuer = normaliseText(b.issuer);
  const subscription = normaliseNumber(b.subscriptionNumber);
  const who = issuer !== null ? `issuer:${issuer}` : subscription !== null ? `subscription:${subscription}` : null;
  const number = normaliseNumber(b.number);
  const date = b.date && /^\d{4}-\d{2}-\d{2}$/.test(b.date) ? b.date : null;
  const amount = normaliseAmount(b.totalAmount);
  const currency = normaliseText(b.currency)?.toUpperCase() ?? null;
  if (who === null || number === null || date === null || amount === null || currency === null) return null;
  // JSON: no separator inside one part can shift a value into the next.
  return JSON.stringify([who, number, date, amount, currency]);
}

/** Every fingerprint the bill has (none, one or two), the file first: bytes are the stronger proof. */
export function fingerprints(key: Buffer, b: BillFacts): Fingerprint[] {
  const mac = (reason: DuplicateReason, text: string) => ({ reason, value: createHmac('sha256', key).update(`${reason}\0${text}`).digest('hex') });
  const out: Fingerprint[] = [];
  if (b.fileSha256 && /^[0-9a-f]{64}$/.test(b.fileSha256)) out.push(mac('file', b.fileSha256));
  const tuple = fieldsTuple(b);
  if (tuple !== null) out.push(mac('fields', tuple));
  return out;
}
