import fc from 'fast-check';
import { describe, expect, it } from 'vitest';
import { fastConnectionSynced, inboundSchemas } from '../src/inbound/payloads.js';

// The hand-written parse of a CONNECTION_SYNCED's documents (inbound/payloads.ts,
// fastConnectionSynced) against zod's: on any payload, either it stands down (undefined,
// and zod decides) or zod accepts the payload too and gives exactly the same output.
const timeZone = 'Europe/Paris';
const schemas = inboundSchemas(timeZone);

const ABSENT = Symbol('absent');
// Per field, the values its schema takes, then others it refuses (or that this path may not take).
const TEXT = [[ABSENT, null, '', 'Bill 7', ' spaced ', 'a "quote" \\ {brace},', 'NULL', 'émoji 🧾', '😀'], ['\u0000', 'lone \ud800', '\udc00x', 5, true, {}, []]];
const DATE = [[ABSENT, null, '', '2026-11-01', '2026-11-01 00:00:00', '2026-11-01T10:00:00Z', '0001-01-01', '9999-12-31'], ['2026-02-30', '0000-01-01', '10000-01-01', '2026-11-1', 'soon', 20261101, '\u0000']];
const DATETIME = [
  [ABSENT, null, '', '2026-11-20 09:00:00', '2026-11-20T08:00:00Z', '2026-11-20T08:00:00.123+01:00', '2026-03-29 02:30:00', '2026-10-25 02:30:00', '9999-12-31T22:59:59Z'],
  ['0001-01-01 00:30:00', '9999-12-31 23:59:59', '2026-11-20 25:00:00', 'yesterday', 3],
];
const NUMBER = [[ABSENT, null, 0, -0, 42.5, -7.08, 1e21, 5e-324, 1.7976931348623157e308], ['42', true, {}]];
const BOOL = [[ABSENT, null, true, false], [0, 'true']];
const CURRENCY = [[ABSENT, null, 'EUR', '', { id: 'EUR', symbol: '€' }, { id: 'USD' }], [{ id: 5 }, { symbol: '$' }, { id: null }, [], ['EUR'], '\u0000', { id: 'x\ud800' }]];
const ID = [[1, 2, 3, 41, 9007199254740991], [0, -1, 1.5, 9007199254740992, '5', null]];

const FIELDS = {
  name: TEXT, type: TEXT, date: DATE, duedate: DATE, number: TEXT, issuer: TEXT, total_amount: NUMBER, untaxed_amount: NUMBER,
  vat: NUMBER, currency: CURRENCY, income: BOOL, url: TEXT, has_file_on_website: BOOL, last_update: DATETIME,
} as Record<string, unknown[][]>;

// Mostly documents zod takes, some with one field it refuses, and ids that repeat now and then.
const doc = (subId: number, userId: number) =>
  fc.record({
    id: fc.oneof({ weight: 19, arbitrary: fc.integer({ min: 1, max: 200 }) }, { weight: 1, arbitrary: fc.constantFrom(...ID[0], ...ID[1]) }),
    id_subscription: fc.constantFrom<unknown>(ABSENT, subId),
    id_user: fc.constantFrom<unknown>(ABSENT, userId),
    ...Object.fromEntries(Object.entries(FIELDS).map(([k, [ok]]) => [k, fc.constantFrom(...ok)])),
    extra: fc.constantFrom<unknown>(ABSENT, 1, { nested: true }),
  }).chain((d) =>
    fc.oneof(
      { weight: 20, arbitrary: fc.constant(d) },
      { weight: 1, arbitrary: fc.constantFrom(...Object.keys(FIELDS)).chain((k) => fc.constantFrom(...FIELDS[k][1]).map((v) => ({ ...d, [k]: v }))) },
      { weight: 1, arbitrary: fc.constantFrom<[string, unknown]>(['id_subscription', subId + 1], ['id_subscription', null], ['id_user', userId + 1], ['id_user', '7']).map(([k, v]) => ({ ...d, [k]: v })) },
    ),
  );

/** Mostly a value the field's schema takes, now and then one it refuses. */
const mostly = ([ok, refused]: unknown[][]) => fc.oneof({ weight: 60, arbitrary: fc.constantFrom(...ok) }, { weight: 1, arbitrary: fc.constantFrom(...refused) });
const OPTIONAL_ID = [[ABSENT, null, 40], [0, '40', true]];

// The fields of a subscription and of the connection, each as its schema has it.
const subscriptionFields = fc.record({
  id_connection: fc.constantFrom<unknown>(ABSENT, 31, 31, 31, 31, 31, 31, 32), id_user: fc.constantFrom<unknown>(ABSENT, ABSENT, 9),
  number: mostly(TEXT), label: mostly(TEXT), subscriber: mostly(TEXT), validity: mostly(DATE), renewdate: mostly(DATE), last_update: mostly(DATETIME),
});
const connectionFields = fc.record({
  id_connector: mostly(OPTIONAL_ID), state: mostly(TEXT), error_message: mostly(TEXT), next_try: mostly(DATETIME),
  active: mostly(BOOL), captcha_required: mostly(BOOL), extra: fc.constantFrom<unknown>(ABSENT, { accounts: [] }),
});
const topFields = fc.record({
  id_webhook_data: fc.constantFrom<unknown>(5, 5, 5, 5, 5, 5, 5, ABSENT, null, 0),
  user: fc.constantFrom<unknown>('same', 'same', 'same', 'same', 'same', 'same', 'same', ABSENT, 'other', null, 'extra'),
});

const payload = fc.integer({ min: 1, max: 3 }).chain((subCount) =>
  fc.record({
    userId: fc.constantFrom(7, 8),
    subs: fc.array(fc.record({ id: fc.constantFrom(100, 101, 102, 103, 104, 105, 106, 107), hasDocs: fc.constantFrom('array', 'array', 'array', 'array', 'array', 'array', 'absent', 'null'), n: fc.integer({ min: 0, max: 4 }), fields: subscriptionFields }), { minLength: subCount, maxLength: subCount }),
    last_update: fc.oneof({ weight: 15, arbitrary: fc.constantFrom(...DATETIME[0]) }, { weight: 1, arbitrary: fc.constantFrom(...DATETIME[1]) }),
    listed: fc.constantFrom('array', 'array', 'array', 'absent', 'null'),
    connection: connectionFields,
    top: topFields,
  }).chain((p) =>
    fc.tuple(...p.subs.map((s) => fc.array(doc(s.id, p.userId), { minLength: s.n, maxLength: s.n }))).map((docs) => {
      const strip = (o: Record<string, unknown>) => Object.fromEntries(Object.entries(o).filter(([, v]) => v !== ABSENT));
      const subscriptions = p.subs.map((s, i) => ({
        id: s.id, ...strip({ ...s.fields, id_user: s.fields.id_user === 9 ? p.userId : s.fields.id_user }),
        ...(s.hasDocs === 'array' ? { documents: docs[i].map(strip) } : s.hasDocs === 'null' ? { documents: null } : {}),
      }));
      const connection = strip({ id: 31, id_user: p.userId, ...p.connection, last_update: p.last_update });
      if (p.listed !== 'absent') connection.subscriptions = p.listed === 'array' ? subscriptions : null;
      // As it arrives: JSON.
      const user = { same: { id: p.userId }, other: { id: p.userId + 1 }, extra: { id: p.userId, name: 'Doe' } }[p.top.user as string] ?? p.top.user;
      return JSON.parse(JSON.stringify(strip({ id_webhook_data: p.top.id_webhook_data, user, connection }))) as unknown;
    }),
  ),
);

describe('the fast parse of a sync\'s documents', () => {
  it('gives what zod gives, or stands down', () => {
    let taken = 0;
    fc.assert(
      fc.property(payload, (json) => {
        const fast = fastConnectionSynced(schemas, timeZone, json);
        const slow = schemas.connectionSynced.safeParse(json);
        // Every value the generator draws as valid is one this path takes: it stands down
        // only for a payload zod refuses, or one without a list of subscriptions.
        if (fast === undefined) {
          expect(slow.success && Array.isArray((json as { connection: { subscriptions?: unknown } }).connection.subscriptions)).toBe(false);
          return;
        }
        if (fast.connection.subscriptions.some((s) => s.documents.length > 0)) taken++;
        expect(slow.success).toBe(true);
        expect(fast).toStrictEqual(slow.data);
      }),
      { numRuns: 5000 },
    );
    // Not vacuous: hundreds of the payloads compared had documents.
    expect(taken).toBeGreaterThan(300);
  });

  it('takes a large sync of ordinary documents', () => {
    const json = JSON.parse(JSON.stringify({
      id_webhook_data: 1, user: { id: 1 },
      connection: {
        id: 1, id_user: 1, state: null, last_update: '2026-11-20 09:00:00',
        subscriptions: [{ id: 10, documents: Array.from({ length: 1000 }, (_, d) => ({
          id: d + 1, id_subscription: 10, name: `Bill ${d}`, type: 'bill', date: '2026-11-01 00:00:00', duedate: null, number: String(d),
          issuer: 'Acme', total_amount: 42.5, untaxed_amount: 35.42, vat: 7.08, currency: { id: 'EUR', symbol: '€' },
          url: `https://provider.example/${d}.pdf`, has_file_on_website: true, last_update: '2026-11-19T10:00:00Z',
        })) }],
      },
    }));
    const fast = fastConnectionSynced(schemas, timeZone, json);
    expect(fast).toBeDefined();
    expect(fast).toStrictEqual(schemas.connectionSynced.parse(json));
  });
});
