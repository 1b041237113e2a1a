/**
 * When to try a webhook message again — pure decisions, no I/O (tested without a network).
 *
 * Svix's published schedule: attempts immediately, then 5 s, 5 min, 30 min, 2 h, 5 h, 10 h
 * and 10 h after each failure — 8 attempts over about 27 hours. Each wait gets ±10 % of
 * jitter so that the retries of one burst do not all hit the receiver in the same second.
 * A receiver that answers 429 or 503 with `Retry-After` is taken at its word (capped at the
 * longest step). 410 Gone means the receiver wants no more: the endpoint is disabled.
 */

const S = 1000;
export const retryDelaysMs = [5 * S, 5 * 60 * S, 30 * 60 * S, 2 * 3600 * S, 5 * 3600 * S, 10 * 3600 * S, 10 * 3600 * S];
export const maxAttempts = retryDelaysMs.length + 1;
/** An endpoint that has failed without a single success for this long is disabled. */
export const disableAfterFailingMs = 5 * 24 * 3600 * S;
const jitter = 0.1;

export interface AttemptResult {
  /** HTTP status, or null when no response came (refused, timeout, reset). */
  status: number | null;
  retryAfter?: string | null;
}

export type Decision =
  | { kind: 'succeeded' }
  | { kind: 'retry'; delayMs: number }
  | { kind: 'failed'; reason: 'attempts_exhausted' }
  | { kind: 'disable_endpoint'; reason: 'gone' | 'failing_for_5_days' };

export function isSuccess(status: number | null): boolean {
  return status !== null && status >= 200 && status < 300;
}

/**
 * What to do after attempt number `attempt` (1-based) of a message got `result`.
 * `failingSinceMs`: when the endpoint's current run of failures began (null: it was healthy).
 */
export function nextStepAfterAttempt(
  attempt: number,
  result: AttemptResult,
  opts: { now: number; failingSinceMs: number | null; random?: () => number },
): Decision {
  if (isSuccess(result.status)) return { kind: 'succeeded' };
  if (result.status === 410) return { kind: 'disable_endpoint', reason: 'gone' };
  if (opts.failingSinceMs !== null && opts.now - opts.failingSinceMs >= disableAfterFailingMs) {
    return { kind: 'disable_endpoint', reason: 'failing_for_5_days' };
  }
  if (attempt >= maxAttempts) return { kind: 'failed', reason: 'attempts_exhausted' };
  const asked = result.status === 429 || result.status === 503 ? retryAfterMs(result.retryAfter, opts.now) : null;
  if (asked !== null) return { kind: 'retry', delayMs: Math.min(asked, retryDelaysMs.at(-1)!) };
  return { kind: 'retry', delayMs: withJitter(retryDelaysMs[attempt - 1], opts.random ?? Math.random) };
}

export function withJitter(ms: number, random: () => number): number {
  return Math.round(ms * (1 - jitter + 2 * jitter * random()));
}

/** `Retry-After` as delta-seconds or an HTTP date → milliseconds from now; null when absent or unreadable. */
export function retryAfterMs(value: string | null | undefined, now: number): number | null {
  if (!value) return null;
  const v = value.trim();
  if (/^\d+$/.test(v)) return Number(v) * S;
  const at = Date.parse(v);
  if (Number.isNaN(at)) return null;
  return Math.max(0, at - now);
}
