import { describe, expect, it } from 'vitest';
import { fieldsTuple, fingerprints, ledgerKey, type BillFacts } from '../src/dedupe/fingerprint.js';

// The rule of "same bill" (README, "A bill is announced once"), without a database.
const key = ledgerKey('test-link-secret');
const bill: BillFacts = {
  fileSha256: 'a'.repeat(64),
  issuer: 'Acme Énergie',
  subscriptionNumber: 'EZ42250022314',
  number: 'FA-023315',
  date: '2026-11-01',
  totalAmount: 42.5,
  currency: 'EUR',
};
const values = (b: BillFacts) => fingerprints(key, b).map((p) => `${p.reason}:${p.value}`);

describe('bill fingerprints', () => {
  it('gives a file and a fields fingerprint, keyed: another key gives others, and none shows the input', () => {
    const prints = fingerprints(key, bill);
    expect(prints.map((p) => p.reason)).toEqual(['file', 'fields']);
    expect(prints.every((p) => /^[0-9a-f]{64}$/.test(p.value))).toBe(true);
    expect(prints.map((p) => p.value)).not.toContain('a'.repeat(64));
    expect(fingerprints(ledgerKey('another-secret'), bill).map((p) => p.value)).not.toContain(prints[0].value);
  });

  it('reads the fields the way people would: case, spacing, Unicode forms, 42.5 = 42.50', () => {
    const same = { ...bill, issuer: '  ACME  E\u0301nergie ', number: 'fa-023 315', currency: 'eur', totalAmount: 42.5 };
    expect(values(same)).toEqual(values(bill));
  });

  it('any other amount, number, date, currency or issuer is another bill', () => {
    const fields = (b: BillFacts) => fingerprints(key, { ...b, fileSha256: null })[0].value;
    for (const other of [
      { totalAmount: 42.51 },
      { totalAmount: 425 },
      { totalAmount: -42.5 },
      { number: 'FA-023316' },
      { number: 'FA-0233150' },
      { number: 'FA0-23315' },
      { date: '2026-11-02' },
      { currency: 'GBP' },
      { issuer: 'Acme' },
    ] satisfies Partial<BillFacts>[]) {
      expect(fields({ ...bill, ...other }), JSON.stringify(other)).not.toBe(fields(bill));
    }
  });

  it('uses the subscription number when there is no issuer, and needs every other part', () => {
    expect(JSON.parse(fieldsTuple({ ...bill, issuer: null })!)[0]).toBe('subscription:ez42250022314');
    expect(fieldsTuple({ ...bill, issuer: ' ', subscriptionNumber: null })).toBeNull();
    for (const missing of ['number', 'date', 'totalAmount', 'currency'] as const) {
      expect(fieldsTuple({ ...bill, [missing]: null }), missing).toBeNull();
    }
    expect(fieldsTuple({ ...bill, number: '   ' })).toBeNull();
    // Only the file then.
    expect(fingerprints(key, { ...bill, number: null }).map((p) => p.reason)).toEqual(['file']);
    expect(fingerprints(key, { ...bill, fileSha256: null, number: null })).toEqual([]);
  });

  it('a part cannot slide into the next one', () => {
    expect(fieldsTuple({ ...bill, issuer: 'a","b' })).not.toBe(fieldsTuple({ ...bill, issuer: 'a', number: 'b' }));
  });
});
