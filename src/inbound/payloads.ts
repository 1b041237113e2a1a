import { z } from 'zod';
import type { ConnectionSync } from '../archive/sync.js';
import { calendarDate as day, dateTime as instant, id, text as storableText } from '../lib/input.js';

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
      const c = p.connection;
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
 */
export function connectionSyncOf({ captcha_required: _captcha, ...c }: SyncedConnection): ConnectionSync {
  return {
    ...c,
    subscriptions: c.subscriptions.map(({ id_connection: _c, id_user: _u, documents, ...s }) => ({
      ...s,
      documents: documents.map(({ id_subscription: _s, ...d }) => d),
    })),
  };
}
