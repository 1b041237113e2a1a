import { describe, expect, it } from 'vitest';
import { backoffMs, captchaStepForSync, classifySync, isCaptchaInduced, upstreamBackoffMs } from '../src/archive/captcha/policy.js';

// The captcha retry rule, the pure part: no database here.
const MIN = 60_000;
const HOUR = 60 * MIN;

describe('isCaptchaInduced', () => {
  it('needs websiteUnavailable and either captcha_required or "captcha" in the message, any case', () => {
    expect(isCaptchaInduced({ state: 'websiteUnavailable', error_message: null, captcha_required: true })).toBe(true);
    expect(isCaptchaInduced({ state: 'websiteUnavailable', error_message: 'The website asked for a CAPTCHA', captcha_required: false })).toBe(true);
    expect(isCaptchaInduced({ state: 'websiteUnavailable', error_message: 'reCaptcha v3 failed' })).toBe(true);
    expect(isCaptchaInduced({ state: 'websiteUnavailable', error_message: 'maintenance', captcha_required: false })).toBe(false);
    expect(isCaptchaInduced({ state: 'websiteUnavailable', error_message: null, captcha_required: null })).toBe(false);
    expect(isCaptchaInduced({ state: 'wrongpass', error_message: 'captcha', captcha_required: true })).toBe(false);
    expect(isCaptchaInduced({ state: null, error_message: null, captcha_required: true })).toBe(false);
  });

  it('classifies the shared captcha fixture as captcha, success and other failures apart', () => {
    expect(classifySync({ state: 'websiteUnavailable', error_message: 'The website asked for a captcha that could not be solved' })).toBe('captcha');
    expect(classifySync({ state: null, error_message: null })).toBe('success');
    expect(classifySync({ state: 'SCARequired', error_message: null })).toBe('other_failure');
  });
});

describe('backoffMs', () => {
  it('is 10 min × 2^(n-1) without jitter, capped at 6 h', () => {
    const none = () => 0;
    expect([1, 2, 3, 4, 5, 6].map((n) => backoffMs(n, none))).toEqual([10, 20, 40, 80, 160, 320].map((m) => m * MIN));
    expect(backoffMs(7, none)).toBe(6 * HOUR); // 640 min > 360 min
    expect(backoffMs(60, none)).toBe(6 * HOUR);
    expect(backoffMs(1000, none)).toBe(6 * HOUR);
  });

  it('adds up to 10 % jitter, never more, never less than the base', () => {
    expect(backoffMs(1, () => 0.999999)).toBeLessThanOrEqual(11 * MIN);
    expect(backoffMs(1, () => 0.5)).toBe(10.5 * MIN);
    expect(backoffMs(9, () => 0.999999)).toBeLessThanOrEqual(6.6 * HOUR);
    for (let i = 0; i < 200; i++) {
      const n = 1 + (i % 9);
      const base = Math.min(10 * MIN * 2 ** (n - 1), 6 * HOUR);
      const d = backoffMs(n);
      expect(d).toBeGreaterThanOrEqual(base);
      expect(d).toBeLessThanOrEqual(base * 1.1);
    }
  });

  it('spreads connections that failed together', () => {
    const delays = new Set(Array.from({ length: 50 }, () => backoffMs(3)));
    expect(delays.size).toBeGreaterThan(40);
  });
});

describe('upstreamBackoffMs', () => {
  it('is 1 min × 2^(n-1) after the n-th upstream error in a row, capped at 1 h, plus up to 10 % jitter', () => {
    const none = () => 0;
    expect([1, 2, 3, 4, 5, 6, 7, 8, 100].map((n) => upstreamBackoffMs(n, none))).toEqual([1, 2, 4, 8, 16, 32, 60, 60, 60].map((m) => m * MIN));
    expect(upstreamBackoffMs(3, () => 0.5)).toBe(4.2 * MIN);
    expect(upstreamBackoffMs(50, () => 0.999999)).toBeLessThanOrEqual(1.1 * HOUR);
  });
});

describe('captchaStepForSync', () => {
  const on = { enabled: true, maxRetries: 3 };
  const off = { enabled: false, maxRetries: 3 };
  const r = () => 0;

  it('a captcha failure while disabled is counted, not retried, never given up', () => {
    expect(captchaStepForSync({ status: null, attempts: 0 }, 'captcha', off, r)).toEqual({ kind: 'disabled', attempts: 1 });
    expect(captchaStepForSync({ status: 'disabled', attempts: 7 }, 'captcha', off, r)).toEqual({ kind: 'disabled', attempts: 8 });
  });

  it('a captcha failure while enabled schedules the next retry with the backoff of its attempt', () => {
    expect(captchaStepForSync({ status: null, attempts: 0 }, 'captcha', on, r)).toEqual({ kind: 'retry', attempts: 1, delayMs: 10 * MIN });
    expect(captchaStepForSync({ status: 'retrying', attempts: 1 }, 'captcha', on, r)).toEqual({ kind: 'retry', attempts: 2, delayMs: 20 * MIN });
    // Switched on after failures while disabled: the count goes on.
    expect(captchaStepForSync({ status: 'retrying', attempts: 1 }, 'captcha', { enabled: true, maxRetries: 6 }, r)).toMatchObject({ kind: 'retry', attempts: 2 });
  });

  it('gives up at captcha.max_retries attempts, announcing it once', () => {
    expect(captchaStepForSync({ status: 'retrying', attempts: 2 }, 'captcha', on, r)).toEqual({ kind: 'gave_up', attempts: 3, announce: true });
    expect(captchaStepForSync({ status: 'gave_up', attempts: 3 }, 'captcha', on, r)).toEqual({ kind: 'gave_up', attempts: 4, announce: false });
    // Also when the limit was lowered below the count meanwhile.
    expect(captchaStepForSync({ status: 'retrying', attempts: 5 }, 'captcha', on, r)).toEqual({ kind: 'gave_up', attempts: 6, announce: true });
    // A connection given up stays given up, even with retries switched off.
    expect(captchaStepForSync({ status: 'gave_up', attempts: 3 }, 'captcha', off, r)).toMatchObject({ kind: 'gave_up', announce: false });
  });

  it('a successful sync recovers any captcha status with its attempt count, and is nothing otherwise', () => {
    for (const status of ['disabled', 'retrying', 'gave_up'] as const) {
      expect(captchaStepForSync({ status, attempts: 4 }, 'success', on, r)).toEqual({ kind: 'recovered', attempts: 4 });
    }
    expect(captchaStepForSync({ status: null, attempts: 0 }, 'success', on, r)).toEqual({ kind: 'none' });
  });

  it('another failure in between is only noted: it neither counts nor resets', () => {
    expect(captchaStepForSync({ status: 'retrying', attempts: 2 }, 'other_failure', on, r)).toEqual({ kind: 'note' });
    expect(captchaStepForSync({ status: null, attempts: 0 }, 'other_failure', on, r)).toEqual({ kind: 'none' });
  });
});
