import { randomBytes } from 'node:crypto';
import { Webhook } from 'svix';

/**
 * Endpoint secrets and message signatures, in Svix's format (Standard Webhooks), so that
 * a receiver verifies with `new Webhook(secret).verify(body, headers)` from the svix library.
 */

/** `whsec_` + base64 of 32 random bytes (Svix accepts 24 to 64). */
export const newEndpointSecret = () => `whsec_${randomBytes(32).toString('base64')}`;

export interface SigningSecrets {
  secret: string;
  /** The secret before the last rotation, still signing beside the new one until it expires. */
  previousSecret?: string | null;
  previousSecretExpiresAt?: Date | null;
  /** Secrets replaced before the previous one, each signing until its own expiry. */
  olderSecrets?: { secret: string; expiresAt: string }[];
}

/** The secrets that sign a message sent at `at`: the current one, plus the previous one during its grace period. */
export function activeSecrets(s: SigningSecrets, at: Date): string[] {
  const out = [s.secret];
  if (s.previousSecret && s.previousSecretExpiresAt && s.previousSecretExpiresAt > at) out.push(s.previousSecret);
  for (const o of s.olderSecrets ?? []) if (Date.parse(o.expiresAt) > at.getTime()) out.push(o.secret);
  return out;
}

/**
 * The headers of one delivery: `webhook-id` (the message id, the same on every retry),
 * `webhook-timestamp` (this attempt's time, which receivers check against replay), and
 * `webhook-signature` with one `v1,…` per active secret, space-separated.
 */
export function signedHeaders(messageId: string, at: Date, body: string, secrets: string[]): Record<string, string> {
  const signature = secrets.map((s) => new Webhook(s).sign(messageId, at, body)).join(' ');
  return {
    'webhook-id': messageId,
    'webhook-timestamp': String(Math.floor(at.getTime() / 1000)),
    'webhook-signature': signature,
  };
}
