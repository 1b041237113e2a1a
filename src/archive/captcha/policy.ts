/**
 * The captcha retry rule (README, introduction, point 4) as pure functions: what a sync
 * means, how long to wait, and what to do. No I/O here, so every branch is unit-tested
 * without a database (test/captcha-policy.test.ts); track.ts applies the decisions in a
 * transaction.
 */

export type CaptchaStatus = 'disabled' | 'retrying' | 'gave_up';

/** What a CONNECTION_SYNCED says about captchas. */
export type SyncKind = 'captcha' | 'success' | 'other_failure';

export interface SyncState {
  state: string | null;
  error_message: string | null;
  captcha_required?: boolean | null;
}

/**
 * `state: "websiteUnavailable"` and either `captcha_required: true` or an `error_message`
 * mentioning a captcha (any case). Powens has no dedicated state for it: the website was
 * unavailable *because* of a captcha, which is worth retrying later, unlike a plain outage
 * that Powens already retries itself (its `next_try`).
 */
export function isCaptchaInduced(c: SyncState): boolean {
  if (c.state !== 'websiteUnavailable') return false;
  return c.captcha_required === true || /captcha/i.test(c.error_message ?? '');
}

export function classifySync(c: SyncState): SyncKind {
  if (isCaptchaInduced(c)) return 'captcha';
  return c.state === null ? 'success' : 'other_failure';
}

export const BACKOFF_BASE_MS = 10 * 60_000;
export const BACKOFF_CAP_MS = 6 * 3600_000;
export const BACKOFF_JITTER = 0.1;

/**
 * Wait before re-sync number `attempt` (1-based): `min(10 min × 2^(n-1), 6 h)` plus up to
 * 10 % jitter, so that connections that hit a captcha together (a provider turning one on
 * for everybody) do not all come back at the same second. `random` is in [0, 1).
 */
export function backoffMs(attempt: number, random: () => number = Math.random): number {
  return doubling(BACKOFF_BASE_MS, BACKOFF_CAP_MS, attempt, random);
}

export const UPSTREAM_BACKOFF_BASE_MS = 60_000;
export const UPSTREAM_BACKOFF_CAP_MS = 3600_000;

/**
 * Wait after the n-th re-sync request in a row that the aggregator's API refused or did
 * not answer: `min(1 min × 2^(n-1), 1 h)` plus up to 10 % jitter. Not a captcha failure
 * (the captcha was not even tried): retried for as long as it takes, never counted.
 */
export function upstreamBackoffMs(errors: number, random: () => number = Math.random): number {
  return doubling(UPSTREAM_BACKOFF_BASE_MS, UPSTREAM_BACKOFF_CAP_MS, errors, random);
}

function doubling(baseMs: number, capMs: number, n: number, random: () => number): number {
  const k = Math.max(1, Math.floor(n));
  // 2^(k-1) overflows nothing before the cap: the exponent is bounded.
  const base = Math.min(baseMs * 2 ** Math.min(k - 1, 30), capMs);
  return Math.round(base + base * BACKOFF_JITTER * Math.min(Math.max(random(), 0), 1));
}

export interface CaptchaTracking {
  status: CaptchaStatus | null;
  attempts: number;
}

export interface CaptchaSettings {
  enabled: boolean;
  maxRetries: number;
}

/**
 * What to do with one sync, given the connection's tracking so far:
 * - `none`: nothing to track (a success or another failure on a connection without a captcha history);
 * - `note`: another failure during a captcha history: kept in the history, which it does not reset;
 * - `disabled`: counted, not retried (`captcha.enabled` = "0");
 * - `retry`: counted, a re-sync is scheduled after `delayMs`;
 * - `gave_up`: counted, no more retries; `announce` is false when it had already given up
 *   (the event is sent once per run of failures);
 * - `recovered`: a successful sync ends the history; the event carries the attempts it took.
 */
export type CaptchaDecision =
  | { kind: 'none' }
  | { kind: 'note' }
  | { kind: 'disabled'; attempts: number }
  | { kind: 'retry'; attempts: number; delayMs: number }
  | { kind: 'gave_up'; attempts: number; announce: boolean }
  | { kind: 'recovered'; attempts: number };

export function captchaStepForSync(
  current: CaptchaTracking,
  sync: SyncKind,
  settings: CaptchaSettings,
  random: () => number = Math.random,
): CaptchaDecision {
  if (sync === 'success') {
    return current.status === null ? { kind: 'none' } : { kind: 'recovered', attempts: current.attempts };
  }
  if (sync === 'other_failure') return current.status === null ? { kind: 'none' } : { kind: 'note' };

  // Each captcha-induced failure reported by a sync is one attempt, whatever the status.
  const attempts = current.attempts + 1;
  if (current.status === 'gave_up') return { kind: 'gave_up', attempts, announce: false };
  // Disabled: counted so the history is whole, but nothing is retried, so nothing is given up either.
  if (!settings.enabled) return { kind: 'disabled', attempts };
  if (attempts >= settings.maxRetries) return { kind: 'gave_up', attempts, announce: true };
  return { kind: 'retry', attempts, delayMs: backoffMs(attempts, random) };
}
