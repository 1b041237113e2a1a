import { createHmac, timingSafeEqual } from 'node:crypto';
import type { LinkSigner } from '../config.js';

/**
 * Signed, expiring file links (a document's `url` and `thumb_url`):
 * `/files/{id}?exp=<unix>&sig=<hmac>` and `/files/{id}/thumbnail?…`. The signature covers
 * the variant, the id and the expiry, so a link can be neither pointed at another file nor
 * extended.
 */

export type FileVariant = 'file' | 'thumbnail';

function signature(secret: string, variant: FileVariant, documentId: number, exp: number): string {
  return createHmac('sha256', secret).update(`${variant}:${documentId}:${exp}`).digest('base64url');
}

export function signedFileUrl(s: LinkSigner, variant: FileVariant, documentId: number, now = Date.now()): string {
  const exp = Math.floor(now / 1000) + s.ttlS;
  const path = variant === 'file' ? `/files/${documentId}` : `/files/${documentId}/thumbnail`;
  return `${s.publicUrl}${path}?exp=${exp}&sig=${signature(s.secret, variant, documentId, exp)}`;
}

/** Constant-time check of a link; false when tampered with or expired. */
export function verifyFileLink(
  secret: string,
  variant: FileVariant,
  documentId: number,
  exp: string | undefined,
  sig: string | undefined,
  now = Date.now(),
): boolean {
  if (!exp || !sig || !/^\d{1,12}$/.test(exp)) return false;
  const expected = Buffer.from(signature(secret, variant, documentId, Number(exp)));
  const given = Buffer.from(sig);
  if (given.length !== expected.length || !timingSafeEqual(given, expected)) return false;
  return Number(exp) * 1000 > now;
}
