import { z } from 'zod';
import type { ConnectionSync } from '../archive/sync.js';
import { calendarDate as day, dateTime as instant, id, isStorableText, text as storableText } from '../lib/input.js';
import { parseCalendarDate, parseDateTime } from '../lib/dates.js';

/**
 * Schemas of the inbound Powens webhooks (`POST /webhooks/powens/{EVENT}` in
 * /openapi.json). Unknown fields are ignored (Powens adds accounts, connectors, sources…);
 * what we keep is normalised here, so the diff only ever sees clean values. Built per time
 * zone, since naive datetimes are local. Every value is one of lib/input.ts's types: what
 * passes, PostgreSQL stores.
 */
const powensId = id;
const text = storableText.nullish().transform((v) => v ?? null);
const num = z.number().finite().nullish().transform((v) => v ?? null);
const bool = z.boolean().nullish().transform((v) => v ?? null);

/** An empty string is no date, as null is. */
const calendarDate = z.union([day, z.literal('').transform(() => null)]).nullish().transform((v) => v ?? null);

function dateTime(timeZone: string) {
  return z.union([instant(timeZone), z.literal('').transform(() => null)]).nullish().transform((v) => v ?? null);
}

/** `"EUR"` or Powens' currency object `{"id": "EUR", …}` → `"EUR"`. */
const currency = z
  .union([storableText, z.object({ id: storableText }).loose()])
  .nullish()
  .transform((v) => (v == null ? null : typeof v === 'string' ? v : v.id));

export function inboundSchemas(timeZone: string) {
  const datetime = dateTime(timeZone);

  const document = z.object({
    id: powensId,
    id_subscription: powensId.optional(),
    id_user: powensId.optional(),
    name: text,
    type: text,
    date: calendarDate,
    duedate: calendarDate,
    number: text,
    issuer: text,
    total_amount: num,
    untaxed_amount: num,
    vat: num,
    currency,
    income: bool,
    url: text,
    has_file_on_website: bool,
    last_update: datetime,
  });

  const subscription = z.object({
    id: powensId,
    id_connection: powensId.optional(),
    id_user: powensId.optional(),
    number: text,
    label: text,
    subscriber: text,
    validity: calendarDate,
    renewdate: calendarDate,
    last_update: datetime,
    documents: z.array(document).default([]),
  });

  const connection = z.object({
    id: powensId,
    id_user: powensId,
    id_connector: powensId.nullish().transform((v) => v ?? null),
    state: text,
    error_message: text,
    last_update: datetime,
    next_try: datetime,
    active: z.boolean().nullish().transform((v) => v ?? true),
    captcha_required: z.boolean().nullish().transform((v) => v ?? false),
    subscriptions: z.array(subscription).nullish(),
  })
    // A payload without a `subscriptions` list says nothing about them (a webhook set up
    // without that object): unlike an empty list, it must not archive any.
    .transform(({ subscriptions, ...c }) => ({ ...c, subscriptions: subscriptions ?? [], subscriptionsListed: subscriptions != null }));

  const webhookId = powensId.optional();

  const connectionSynced = z
    .object({ id_webhook_data: webhookId, user: z.object({ id: powensId }).loose().optional(), connection })
    // Inside one payload every id agrees with its parent object, and a document id appears
    // once: the diff then never has to guess which of two owners is meant.
    .superRefine((p, ctx) => {
      // zod runs this on a payload whose connection already has issues, as far as it got:
      // then the connection's transform has not run, and a list may still be null.
      const c = p.connection;
      if (!Array.isArray(c.subscriptions)) return;
      const disagree = (path: (string | number)[], field: string, parent: string) =>
        ctx.addIssue({ code: 'custom', path: ['connection', ...path, field], message: `differs from ${parent}` });
      if (p.user && p.user.id !== c.id_user) disagree([], 'id_user', 'user.id');
      const seenSubs = new Set<number>();
      const seenDocs = new Set<number>();
      c.subscriptions.forEach((s, i) => {
        const at = ['subscriptions', i];
        if (s.id_connection !== undefined && s.id_connection !== c.id) disagree(at, 'id_connection', 'connection.id');
        if (s.id_user !== undefined && s.id_user !== c.id_user) disagree(at, 'id_user', 'connection.id_user');
        if (seenSubs.has(s.id)) ctx.addIssue({ code: 'custom', path: ['connection', ...at, 'id'], message: 'duplicate subscription id' });
        seenSubs.add(s.id);
        if (!Array.isArray(s.documents)) return;
        s.documents.forEach((d, j) => {
          const at = ['subscriptions', i, 'documents', j];
          if (d.id_subscription !== undefined && d.id_subscription !== s.id) disagree(at, 'id_subscription', `its subscription's id (${s.id})`);
          if (d.id_user !== undefined && d.id_user !== c.id_user) disagree(at, 'id_user', 'connection.id_user');
          if (seenDocs.has(d.id)) ctx.addIssue({ code: 'custom', path: ['connection', ...at, 'id'], message: 'duplicate document id' });
          seenDocs.add(d.id);
        });
      });
    });

  // CONNECTION_DELETED and USER_DELETED carry the object itself, or wrap it in
  // `{"connection": …}` / `{"user": …}`: unwrap, then read the id.
  // A wrapper that is there but is no object is refused under its own name.
  const unwrap = (field: string) => (v: unknown, ctx: z.RefinementCtx) => {
    const outer = v as Record<string, unknown> | null;
    if (typeof outer !== 'object' || outer === null || !Object.hasOwn(outer, field)) return v;
    const inner = outer[field];
    if (typeof inner === 'object' && inner !== null && !Array.isArray(inner)) return inner;
    ctx.addIssue({ code: 'custom', path: [field], message: `${field} must be an object` });
    return z.NEVER;
  };
  const connectionDeleted = z.preprocess(unwrap('connection'), z.object({ id: powensId, id_user: powensId.optional() }));
  const userDeleted = z.preprocess(unwrap('user'), z.object({ id: powensId }));

  return { connectionSynced, connectionDeleted, userDeleted };
}

export type InboundSchemas = ReturnType<typeof inboundSchemas>;
export type ConnectionSynced = z.infer<InboundSchemas['connectionSynced']>;
export type SyncedConnection = ConnectionSynced['connection'];

/**
 * The checked payload → the sync the archive applies: the fields are already normalised;
 * what the archive does not read (captcha_required, ids repeating the parent's) stays behind.
 * The documents are passed as they are, their repeated ids with them: the archive reads a
 * document's fields by name, and copying 10,000 objects to leave out two fields took longer
 * than anything else between the parse and the statement (bench/ingest.ts).
 */
export function connectionSyncOf({ captcha_required: _captcha, ...c }: SyncedConnection): ConnectionSync {
  return {
    ...c,
    subscriptions: c.subscriptions.map(({ id_connection: _c, id_user: _u, ...s }) => s),
  };
}

type Json = Record<string, unknown>;
const isObject = (v: unknown): v is Json => typeof v === 'object' && v !== null && !Array.isArray(v);
const isId = (v: unknown): v is number => Number.isSafeInteger(v) && (v as number) >= 1;

/**
 * `connectionSynced.safeParse(json)` for the common case, several times faster: the
 * payload is checked and normalised by hand, each field as its schema above does it (the
 * documents are most of a payload, and were most of zod's time: ~5 µs each, half of it
 * garbage; the connection and its subscriptions through zod were still ~0.2 ms a webhook).
 * Only values that schema accepts in the way written here are taken; on anything else (a
 * refused value, a duplicate id, an id disagreeing with its parent, a type this path does
 * not handle) it returns undefined and the caller parses with zod, which accepts or
 * refuses with its own issues. test/inbound-fast-parse.test.ts holds the two to the same
 * output on generated payloads. `_schemas`: those zod schemas, which this path mirrors.
 */
export function fastConnectionSynced(_schemas: InboundSchemas, timeZone: string, json: unknown): ConnectionSynced | undefined {
  if (!isObject(json) || !isObject(json.connection) || !Array.isArray(json.connection.subscriptions)) return undefined;
  try {
    const j = json.connection;
    const connection: SyncedConnection = {
      id: requiredId(j.id),
      id_user: requiredId(j.id_user),
      id_connector: j.id_connector == null ? null : requiredId(j.id_connector),
      state: fastText(j.state),
      error_message: fastText(j.error_message),
      last_update: dateTimeOf(j.last_update, timeZone),
      next_try: dateTimeOf(j.next_try, timeZone),
      active: fastBool(j.active) ?? true,
      captcha_required: fastBool(j.captcha_required) ?? false,
      subscriptions: [],
      subscriptionsListed: true,
    };
    const out = {} as ConnectionSynced;
    if (json.id_webhook_data !== undefined) out.id_webhook_data = requiredId(json.id_webhook_data);
    if (json.user !== undefined) {
      if (!isObject(json.user) || requiredId(json.user.id) !== connection.id_user) return undefined;
      out.user = { ...json.user, id: json.user.id as number };
    }
    out.connection = connection;
    const seenSubs = new Set<number>();
    const seenDocs = new Set<number>();
    for (const js of json.connection.subscriptions) {
      const sub = fastSubscription(js, connection, timeZone);
      if (sub === undefined || seenSubs.has(sub.id)) return undefined;
      seenSubs.add(sub.id);
      for (const d of sub.documents) {
        if (seenDocs.has(d.id)) return undefined;
        seenDocs.add(d.id);
      }
      connection.subscriptions.push(sub);
    }
    return out;
  } catch (e) {
    if (e === NOT_FAST) return undefined;
    throw e;
  }
}

type SyncedSubscription = SyncedConnection['subscriptions'][number];

function fastSubscription(s: unknown, c: SyncedConnection, timeZone: string): SyncedSubscription | undefined {
  if (!isObject(s)) return undefined;
  const out = { id: requiredId(s.id) } as SyncedSubscription;
  if (s.id_connection !== undefined && (out.id_connection = requiredId(s.id_connection)) !== c.id) return undefined;
  if (s.id_user !== undefined && (out.id_user = requiredId(s.id_user)) !== c.id_user) return undefined;
  out.number = fastText(s.number);
  out.label = fastText(s.label);
  out.subscriber = fastText(s.subscriber);
  out.validity = calendarDateOf(s.validity);
  out.renewdate = calendarDateOf(s.renewdate);
  out.last_update = dateTimeOf(s.last_update, timeZone);
  const docs = s.documents === undefined ? [] : s.documents;
  if (!Array.isArray(docs)) return undefined;
  out.documents = new Array(docs.length);
  for (let j = 0; j < docs.length; j++) {
    const d = fastDocument(docs[j], timeZone);
    if (d === undefined) return undefined;
    if ((d.id_subscription !== undefined && d.id_subscription !== out.id) || (d.id_user !== undefined && d.id_user !== c.id_user)) return undefined;
    out.documents[j] = d;
  }
  return out;
}

type SyncedDocument = SyncedConnection['subscriptions'][number]['documents'][number];
/** Thrown out of fastDocument's field readers: not a value this path takes. */
const NOT_FAST = Symbol('not fast');

function fastDocument(d: unknown, timeZone: string): SyncedDocument | undefined {
  if (!isObject(d) || !isId(d.id)) return undefined;
  try {
    const out: SyncedDocument = { id: d.id } as SyncedDocument;
    if (d.id_subscription !== undefined) out.id_subscription = optionalId(d.id_subscription);
    if (d.id_user !== undefined) out.id_user = optionalId(d.id_user);
    out.name = fastText(d.name);
    out.type = fastText(d.type);
    out.date = calendarDateOf(d.date);
    out.duedate = calendarDateOf(d.duedate);
    out.number = fastText(d.number);
    out.issuer = fastText(d.issuer);
    out.total_amount = fastNum(d.total_amount);
    out.untaxed_amount = fastNum(d.untaxed_amount);
    out.vat = fastNum(d.vat);
    out.currency = isObject(d.currency) ? fastTextOnly(d.currency.id) : fastText(d.currency);
    out.income = fastBool(d.income);
    out.url = fastText(d.url);
    out.has_file_on_website = fastBool(d.has_file_on_website);
    out.last_update = dateTimeOf(d.last_update, timeZone);
    return out;
  } catch (e) {
    if (e === NOT_FAST) return undefined;
    throw e;
  }
}

function requiredId(v: unknown): number {
  if (!isId(v)) throw NOT_FAST;
  return v;
}
const optionalId = requiredId;
function fastTextOnly(v: unknown): string {
  if (typeof v !== 'string' || !isStorableText(v)) throw NOT_FAST;
  return v;
}
const fastText = (v: unknown): string | null => (v == null ? null : fastTextOnly(v));
function fastNum(v: unknown): number | null {
  if (v == null) return null;
  if (typeof v !== 'number' || !Number.isFinite(v)) throw NOT_FAST;
  return v;
}
function fastBool(v: unknown): boolean | null {
  if (v == null) return null;
  if (typeof v !== 'boolean') throw NOT_FAST;
  return v;
}
function calendarDateOf(v: unknown): string | null {
  if (v == null || v === '') return null;
  const d = parseCalendarDate(fastTextOnly(v));
  if (d === null) throw NOT_FAST;
  return d;
}
function dateTimeOf(v: unknown, timeZone: string): Date | null {
  if (v == null || v === '') return null;
  const d = parseDateTime(fastTextOnly(v), timeZone);
  if (d === null) throw NOT_FAST;
  return d;
}
