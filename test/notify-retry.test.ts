import { describe, expect, it } from 'vitest';
import { Webhook } from 'svix';
import { disableAfterFailingMs, maxAttempts, nextStepAfterAttempt, retryAfterMs, retryDelaysMs, withJitter } from '../src/notify/retry.js';
import { activeSecrets, newEndpointSecret, signedHeaders } from '../src/notify/signing.js';
import { attachmentName, composeMail, formatAmount, mailMessageId } from '../src/notify/mail.js';

// The pure parts of delivery: the retry decisions, the signatures, the mail's text.
const now = Date.parse('2026-11-20T08:00:00Z');
const healthy = { now, failingSinceMs: null, random: () => 0.5 };

describe('retry decisions (Svix schedule)', () => {
  it('follows 5 s, 5 min, 30 min, 2 h, 5 h, 10 h, 10 h and gives up after the 8th attempt', () => {
    const delays = [];
    for (let attempt = 1; attempt < maxAttempts; attempt++) {
      const d = nextStepAfterAttempt(attempt, { status: 500 }, healthy);
      expect(d.kind).toBe('retry');
      delays.push((d as { delayMs: number }).delayMs);
    }
    expect(delays).toEqual([5_000, 300_000, 1_800_000, 7_200_000, 18_000_000, 36_000_000, 36_000_000]);
    expect(maxAttempts).toBe(8);
    expect(nextStepAfterAttempt(8, { status: 500 }, healthy)).toEqual({ kind: 'failed', reason: 'attempts_exhausted' });
    expect(nextStepAfterAttempt(1, { status: null }, healthy).kind).toBe('retry');
  });

  it('adds ±10 % jitter', () => {
    expect(withJitter(10_000, () => 0)).toBe(9_000);
    expect(withJitter(10_000, () => 0.999999)).toBe(11_000);
    const seen = new Set(Array.from({ length: 20 }, () => (nextStepAfterAttempt(1, { status: 500 }, { now, failingSinceMs: null }) as { delayMs: number }).delayMs));
    expect(seen.size).toBeGreaterThan(1);
    for (const d of seen) expect(d >= 4_500 && d <= 5_500).toBe(true);
  });

  it('treats any 2xx as success and 3xx (redirects are not followed) as failure', () => {
    for (const status of [200, 201, 204, 299]) expect(nextStepAfterAttempt(3, { status }, healthy)).toEqual({ kind: 'succeeded' });
    for (const status of [301, 302, 400, 404, 500]) expect(nextStepAfterAttempt(1, { status }, healthy).kind).toBe('retry');
  });

  it('disables on 410, and after 5 days of failures', () => {
    expect(nextStepAfterAttempt(1, { status: 410 }, healthy)).toEqual({ kind: 'disable_endpoint', reason: 'gone' });
    expect(nextStepAfterAttempt(2, { status: 500 }, { ...healthy, failingSinceMs: now - disableAfterFailingMs + 1000 }).kind).toBe('retry');
    expect(nextStepAfterAttempt(2, { status: 500 }, { ...healthy, failingSinceMs: now - disableAfterFailingMs })).toEqual({ kind: 'disable_endpoint', reason: 'failing_for_5_days' });
    // A success ends the run whatever its age.
    expect(nextStepAfterAttempt(2, { status: 200 }, { ...healthy, failingSinceMs: now - 10 * disableAfterFailingMs }).kind).toBe('succeeded');
  });

  it('honours Retry-After (seconds or HTTP date) on 429 and 503 only, capped at the longest step', () => {
    expect(nextStepAfterAttempt(1, { status: 429, retryAfter: '30' }, healthy)).toEqual({ kind: 'retry', delayMs: 30_000 });
    expect(nextStepAfterAttempt(1, { status: 503, retryAfter: new Date(now + 90_000).toUTCString() }, healthy)).toEqual({ kind: 'retry', delayMs: 90_000 });
    expect(nextStepAfterAttempt(1, { status: 429, retryAfter: '999999' }, healthy)).toEqual({ kind: 'retry', delayMs: retryDelaysMs.at(-1) });
    expect(nextStepAfterAttempt(1, { status: 500, retryAfter: '30' }, healthy)).toEqual({ kind: 'retry', delayMs: 5_000 });
    expect(nextStepAfterAttempt(1, { status: 429, retryAfter: 'soon' }, healthy)).toEqual({ kind: 'retry', delayMs: 5_000 });
    expect(retryAfterMs(undefined, now)).toBeNull();
    expect(retryAfterMs(new Date(now - 5000).toUTCString(), now)).toBe(0);
  });
});

describe('signatures', () => {
  it('makes secrets of 32 random bytes that svix accepts, and signatures its Webhook.verify accepts', () => {
    const secret = newEndpointSecret();
    expect(secret).toMatch(/^whsec_[A-Za-z0-9+/]+=*$/);
    expect(Buffer.from(secret.slice(6), 'base64')).toHaveLength(32);
    expect(newEndpointSecret()).not.toBe(secret);
    const body = JSON.stringify({ type: 'document.created', timestamp: '2026-11-20T08:00:00.000Z', data: { a: 1 } });
    const headers = signedHeaders('msg_1', new Date(), body, [secret]);
    expect(headers['webhook-id']).toBe('msg_1');
    expect(new Webhook(secret).verify(body, headers)).toEqual(JSON.parse(body));
    expect(() => new Webhook(secret).verify(body.replace('1', '2'), headers)).toThrow();
    expect(() => new Webhook(newEndpointSecret()).verify(body, headers)).toThrow();
  });

  it('signs with the old secret beside the new one until the grace period ends', () => {
    const [oldS, newS] = [newEndpointSecret(), newEndpointSecret()];
    const at = new Date(now);
    const during = activeSecrets({ secret: newS, previousSecret: oldS, previousSecretExpiresAt: new Date(now + 1000) }, at);
    expect(during).toEqual([newS, oldS]);
    const h = signedHeaders('msg_2', new Date(), '{}', during);
    expect(h['webhook-signature'].split(' ')).toHaveLength(2);
    for (const s of h['webhook-signature'].split(' ')) expect(s).toMatch(/^v1,/);
    expect(() => new Webhook(oldS).verify('{}', h)).not.toThrow();
    expect(() => new Webhook(newS).verify('{}', h)).not.toThrow();
    expect(activeSecrets({ secret: newS, previousSecret: oldS, previousSecretExpiresAt: new Date(now) }, at)).toEqual([newS]);
  });
});

describe('mail text', () => {
  const doc = { id: 9, name: 'Facture novembre', type: 'bill', issuer: 'Acme', totalAmount: 42.5, currency: 'EUR', date: '2026-11-01', duedate: null, number: 'F-9' };
  it('names the document, issuer, amount, date and subscription', () => {
    const m = composeMail(doc, 'Mobile line', { attached: true, status: 'ready' });
    expect(m.subject).toBe('Acme — Facture novembre — €42.50 — 2026-11-01');
    expect(m.text).toContain('Subscription: Mobile line');
    expect(m.text).toContain('Number: F-9');
    expect(m.text).toContain('The file is attached.');
    expect(composeMail({ ...doc, name: null, issuer: null }, null, { attached: false, status: 'failed' }).text).toContain('could not be downloaded');
  });
  it('formats amounts, derives a stable Message-ID and a safe file name', () => {
    expect(formatAmount(10, 'XYZ1')).toBe('10.00 XYZ1');
    expect(formatAmount(null, 'EUR')).toBeNull();
    expect(mailMessageId(9, 7)).toBe('<document-9.user-7@docrelay>');
    expect(attachmentName({ id: 9, name: '../../etc/passwd é' }, 'application/pdf')).toBe('etcpasswd_é.pdf');
    // Names in any script keep their letters (nodemailer encodes them, RFC 2231).
    expect(attachmentName({ id: 9, name: 'Счёт за ноябрь' }, 'application/pdf')).toBe('Счёт_за_ноябрь.pdf');
    expect(attachmentName({ id: 9, name: 'Λογαριασμός Νοεμβρίου 2026' }, 'application/pdf')).toBe('Λογαριασμός_Νοεμβρίου_2026.pdf');
    expect(attachmentName({ id: 9, name: 'é'.normalize('NFD') }, 'application/pdf')).toBe('é.pdf');
    // Look-alikes are what they look like: a fullwidth quote and solidus are dropped too.
    expect(attachmentName({ id: 9, name: '＂／..／bill\u0000"\r\n' }, 'application/pdf')).toBe('bill.pdf');
    expect(attachmentName({ id: 9, name: '🧾' }, 'application/pdf')).toBe('document-9.pdf');
    expect(attachmentName({ id: 9, name: null }, 'text/html; charset=utf-8')).toBe('document-9.html');
  });
});
