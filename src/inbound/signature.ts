import { createHmac, timingSafeEqual } from 'node:crypto';

/**
 * Powens' webhook signature (README: Try it): `BI-Signature` =
 * base64(HMAC-SHA256(secret, "POST." + path + "." + BI-Signature-Date + "." + rawBody)).
 */
export function powensSignature(secret: string, method: string, path: string, date: string, body: Buffer): string {
  return createHmac('sha256', secret)
    .update(`${method.toUpperCase()}.${path}.${date}.`)
    .update(body)
    .digest('base64');
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * What can be checked before the body is read: both headers present and the date within
 * the tolerance. A request that fails here is refused without reading a byte of its body.
 */
export function checkSignatureHeaders(opts: {
  date: string | undefined;
  signature: string | undefined;
  toleranceS: number;
  now?: number;
}): SignatureCheck {
  const { date, signature } = opts;
  if (!date || !signature) return { ok: false, reason: 'BI-Signature and BI-Signature-Date are required' };
  if (opts.toleranceS > 0) {
    const at = Date.parse(date);
    if (Number.isNaN(at)) return { ok: false, reason: 'BI-Signature-Date is not an ISO 8601 datetime' };
    if (Math.abs((opts.now ?? Date.now()) - at) > opts.toleranceS * 1000) {
      return { ok: false, reason: 'BI-Signature-Date is outside the accepted tolerance' };
    }
  }
  return { ok: true };
}

export function verifyPowensSignature(opts: {
  secret: string;
  path: string;
  date: string | undefined;
  signature: string | undefined;
  /** The bodies the signature may cover: the bytes as sent, and decompressed when gzipped. */
  bodies: Buffer[];
  toleranceS: number;
  now?: number;
}): SignatureCheck {
  const headers = checkSignatureHeaders(opts);
  if (!headers.ok) return headers;
  const { date, signature } = opts as { date: string; signature: string };
  const given = Buffer.from(signature.trim(), 'base64');
  const matches = opts.bodies.some((body) => {
    const expected = Buffer.from(powensSignature(opts.secret, 'POST', opts.path, date, body), 'base64');
    return given.length === expected.length && timingSafeEqual(given, expected);
  });
  return matches ? { ok: true } : { ok: false, reason: 'signature does not match' };
}
