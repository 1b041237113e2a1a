import { sql } from 'drizzle-orm';
import {
  bigint,
  boolean,
  date,
  doublePrecision,
  index,
  integer,
  pgTable,
  primaryKey,
  text,
  timestamp,
} from 'drizzle-orm/pg-core';

/**
 * The mirrored Powens data. Ids are Powens' own (integers up to
 * 2^53 − 1, hence bigint in "number" mode). Every child row cascades from its parent so
 * that erasing a user or a connection is one DELETE. The references of the bulk tables
 * (documents → subscriptions, documents.duplicate_of, document_files → documents) are not
 * foreign keys but statement-level triggers with the same guarantees (migration
 * archive_foreign_keys_per_statement): a foreign key checks each row with a query of its
 * own, which cost a 10,000-document sync ~70 ms of CPU; the triggers check a statement's
 * rows at once.
 */

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });
const id = (name: string) => bigint(name, { mode: 'number' });

export const users = pgTable('users', {
  id: id('id').primaryKey(),
  createdAt: ts('created_at').notNull().defaultNow(),
});

/** Per-user API tokens, stored as sha256 hex: a leaked table leaks no token. */
export const userTokens = pgTable(
  'user_tokens',
  {
    tokenHash: text('token_hash').primaryKey(),
    userId: id('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    createdAt: ts('created_at').notNull().defaultNow(),
    /** null: until revoked (DELETE /users/{id}/token). */
    expiresAt: ts('expires_at'),
  },
  (t) => [index('user_tokens_user_id_idx').on(t.userId)],
);

export const connections = pgTable(
  'connections',
  {
    id: id('id').primaryKey(),
    userId: id('user_id')
      .notNull()
      .references(() => users.id, { onDelete: 'cascade' }),
    idConnector: id('id_connector'),
    state: text('state'),
    errorMessage: text('error_message'),
    lastUpdate: ts('last_update'),
    nextTry: ts('next_try'),
    active: boolean('active').notNull().default(true),
    /** null, or 'disabled' | 'retrying' | 'gave_up' (archive/captcha/policy.ts). */
    captchaStatus: text('captcha_status'),
    captchaAttempts: integer('captcha_attempts').notNull().default(0),
    captchaNextRetryAt: ts('captcha_next_retry_at'),
    /** Re-sync requests the aggregator's API refused or never answered, in a row (not attempts). */
    captchaUpstreamErrors: integer('captcha_upstream_errors').notNull().default(0),
    /** The last of them, until a request is accepted. */
    captchaUpstreamError: text('captcha_upstream_error'),
    createdAt: ts('created_at').notNull().defaultNow(),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  (t) => [
    index('connections_user_id_idx').on(t.userId),
    index('connections_captcha_status_idx').on(t.captchaStatus).where(sql`captcha_status is not null`),
  ],
);

export const subscriptions = pgTable(
  'subscriptions',
  {
    id: id('id').primaryKey(),
    connectionId: id('connection_id')
      .notNull()
      .references(() => connections.id, { onDelete: 'cascade' }),
    userId: id('user_id').notNull(),
    number: text('number'),
    label: text('label'),
    subscriber: text('subscriber'),
    validity: date('validity', { mode: 'string' }),
    renewdate: date('renewdate', { mode: 'string' }),
    lastUpdate: ts('last_update'),
    /** Safe archiving: set to the sync's last_update when a successful sync no longer lists it. */
    deleted: ts('deleted'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('subscriptions_user_id_idx').on(t.userId, t.id),
    index('subscriptions_connection_id_idx').on(t.connectionId, t.id),
  ],
);

export const documents = pgTable(
  'documents',
  {
    id: id('id').primaryKey(),
    /** References subscriptions (cascade), checked by trigger: see above. */
    subscriptionId: id('subscription_id').notNull(),
    userId: id('user_id').notNull(),
    name: text('name'),
    type: text('type'),
    date: date('date', { mode: 'string' }),
    duedate: date('duedate', { mode: 'string' }),
    /** When docrelay first saw the document. */
    rdate: ts('rdate').notNull().defaultNow(),
    number: text('number'),
    issuer: text('issuer'),
    totalAmount: doublePrecision('total_amount'),
    untaxedAmount: doublePrecision('untaxed_amount'),
    vat: doublePrecision('vat'),
    currency: text('currency'),
    income: boolean('income'),
    hasFileOnWebsite: boolean('has_file_on_website'),
    /** The provider's URL of the file, never handed out (our `url` is a signed link). */
    sourceUrl: text('source_url'),
    /** force_pdf as it was at the sync that added the document: conversion is never retroactive. */
    forcePdf: boolean('force_pdf').notNull().default(false),
    lastUpdate: ts('last_update'),
    /**
     * A repeat of a bill already announced to the user (dedupe/): the earlier document, null
     * once that one was erased (`duplicate_of: "erased"`), with `duplicateReason` set
     * (references documents, set null, checked by trigger: see above).
     */
    duplicateOf: id('duplicate_of'),
    /** null, or 'file' | 'fields' */
    duplicateReason: text('duplicate_reason'),
  },
  (t) => [
    // Erasing a document nulls the duplicate_of of its repeats: found by this index.
    index('documents_duplicate_of_idx').on(t.duplicateOf).where(sql`duplicate_of is not null`),
    index('documents_user_date_idx').on(t.userId, t.date.desc(), t.id.desc()),
    index('documents_subscription_date_idx').on(t.subscriptionId, t.date.desc(), t.id.desc()),
    // Covers the totals of a user's document list (count, first and last date per subscription)
    // with an index-only scan: see api/documents.ts.
    index('documents_user_subscription_date_idx').on(t.userId, t.subscriptionId, t.date),
  ],
);

/**
 * The totals of document lists (`total`, `first_date`, `last_date`), kept exact by
 * statement-level triggers on `documents` (the migrations named document_months): one row
 * per user, subscription, type, month and duplicate flag, so that a list's totals add up a
 * few hundred rows instead of counting every matching document (api/document-totals.ts).
 * `type` is '' for a document without one; `month` is the first day of its month, or
 * '-infinity' for a document without a date. No foreign key: the triggers remove a row once
 * its last document goes, whatever deleted it (an erasure's cascade included).
 */
export const documentMonths = pgTable(
  'document_months',
  {
    userId: id('user_id').notNull(),
    subscriptionId: id('subscription_id').notNull(),
    type: text('type').notNull(),
    month: date('month', { mode: 'string' }).notNull(),
    duplicate: boolean('duplicate').notNull(),
    n: integer('n').notNull(),
    first: date('first', { mode: 'string' }),
    last: date('last', { mode: 'string' }),
  },
  (t) => [primaryKey({ columns: [t.userId, t.subscriptionId, t.type, t.month, t.duplicate] })],
);

/**
 * Ids erased for good (CONNECTION_DELETED, USER_DELETED, DELETE): a late or retried
 * CONNECTION_SYNCED must not bring their data back. Powens never reuses ids.
 */
export const erasures = pgTable(
  'erasures',
  {
    /** 'user' | 'connection' */
    kind: text('kind').notNull(),
    id: id('id').notNull(),
    erasedAt: ts('erased_at').notNull().defaultNow(),
  },
  (t) => [primaryKey({ columns: [t.kind, t.id] })],
);

/** Inbound idempotency: one row per processed delivery key. */
export const inboundDeliveries = pgTable(
  'inbound_deliveries',
  {
    key: text('key').primaryKey(),
    event: text('event').notNull(),
    outcome: text('outcome').notNull(),
    receivedAt: ts('received_at').notNull().defaultNow(),
  },
  // The operator page's last 24 hours, and prune_retention.
  (t) => [index('inbound_deliveries_received_at_idx').on(t.receivedAt)],
);

/** Powens-style configuration keys (`/config`); defaults live in code. */
export const settings = pgTable('settings', {
  key: text('key').primaryKey(),
  value: text('value').notNull(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});
