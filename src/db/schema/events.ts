import { sql } from 'drizzle-orm';
import {
  bigint,
  bigserial,
  boolean,
  index,
  integer,
  jsonb,
  pgSequence,
  pgTable,
  text,
  timestamp,
  unique,
} from 'drizzle-orm/pg-core';
import { documents, users } from './archive.js';

const ts = (name: string) => timestamp(name, { withTimezone: true, mode: 'date' });

/**
 * The outbox: one row per event (events/record.ts), written in the transaction of the change
 * that caused it. `dedupeKey` makes recording idempotent (e.g. `document.created:9001`);
 * `id` is the stable id customers dedupe on.
 */
export const events = pgTable(
  'events',
  {
    id: text('id').primaryKey(),
    dedupeKey: text('dedupe_key').notNull().unique(),
    type: text('type').notNull(),
    userId: bigint('user_id', { mode: 'number' }),
    /** The connection the event is about, so that erasing it erases its events too. */
    connectionId: bigint('connection_id', { mode: 'number' }),
    data: jsonb('data').notNull(),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    index('events_user_id_idx').on(t.userId),
    index('events_connection_id_idx').on(t.connectionId),
    // prune_retention takes the oldest first.
    index('events_created_at_idx').on(t.createdAt),
  ],
);

/** A replaced endpoint secret that still signs until `expiresAt` (ISO 8601). */
export interface RetiredSecret {
  secret: string;
  expiresAt: string;
}

export const webhookEndpoints = pgTable('webhook_endpoints', {
  id: text('id').primaryKey(),
  url: text('url').notNull(),
  /** Empty: every event type. */
  events: text('events').array().notNull().default(sql`'{}'::text[]`),
  description: text('description'),
  secret: text('secret').notNull(),
  /** After a rotation the old secret keeps signing beside the new one until this time. */
  previousSecret: text('previous_secret'),
  previousSecretExpiresAt: ts('previous_secret_expires_at'),
  /**
   * The secrets replaced before the previous one that are still within their 24 h (a second
   * rotation within a day keeps the first old secret signing too), oldest first.
   */
  olderSecrets: jsonb('older_secrets').$type<RetiredSecret[]>().notNull().default(sql`'[]'::jsonb`),
  disabled: boolean('disabled').notNull().default(false),
  disabledReason: text('disabled_reason'),
  /** Start of the current run of failures; an endpoint failing for 5 days is disabled. */
  failingSince: ts('failing_since'),
  svixEndpointId: text('svix_endpoint_id'),
  createdAt: ts('created_at').notNull().defaultNow(),
});

/** One message per event and endpoint; its id is the `webhook-id` header, stable across retries. */
export const messages = pgTable(
  'messages',
  {
    id: text('id').primaryKey(),
    eventId: text('event_id')
      .notNull()
      .references(() => events.id, { onDelete: 'cascade' }),
    endpointId: text('endpoint_id')
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    /** 'pending' | 'succeeded' | 'failed' */
    status: text('status').notNull().default('pending'),
    attempts: integer('attempts').notNull().default(0),
    nextAttemptAt: ts('next_attempt_at'),
    createdAt: ts('created_at').notNull().defaultNow(),
  },
  (t) => [
    unique('messages_event_endpoint_uq').on(t.eventId, t.endpointId),
    index('messages_endpoint_idx').on(t.endpointId, t.status),
    // The stranded-message sweep (notify/sweep.ts) reads pending messages late on this
    // expression: only the few pending ones are in this index, not the millions delivered.
    index('messages_pending_due_idx').on(sql`coalesce(${t.nextAttemptAt}, ${t.createdAt})`).where(sql`status = 'pending'`),
    index('messages_created_at_idx').on(t.createdAt),
  ],
);

/**
 * Numbers messages as they are fanned out; `deliver_messages` jobs are keyed by this number
 * divided by the batch size, so consecutive messages of one endpoint merge into one job
 * (graphile-worker batch jobs) and no job ever grows past the batch size.
 */
export const messageBatchSeq = pgSequence('message_batch_seq');

/** Every delivery attempt, for `GET /webhook-endpoints/{id}/deliveries`. */
export const deliveryAttempts = pgTable(
  'delivery_attempts',
  {
    id: bigserial('id', { mode: 'number' }).primaryKey(),
    messageId: text('message_id')
      .notNull()
      .references(() => messages.id, { onDelete: 'cascade' }),
    endpointId: text('endpoint_id')
      .notNull()
      .references(() => webhookEndpoints.id, { onDelete: 'cascade' }),
    attempt: integer('attempt').notNull(),
    statusCode: integer('status_code'),
    error: text('error'),
    durationMs: integer('duration_ms').notNull(),
    response: text('response'),
    at: ts('at').notNull().defaultNow(),
  },
  (t) => [
    index('delivery_attempts_endpoint_idx').on(t.endpointId, t.at),
    // A cascading foreign key: every message deleted (erasure, retention) looks its attempts up.
    index('delivery_attempts_message_id_idx').on(t.messageId),
  ],
);

/** Per-user email delivery (`/users/{u}/email-delivery`). */
export const emailSettings = pgTable('email_settings', {
  userId: bigint('user_id', { mode: 'number' })
    .primaryKey()
    .references(() => users.id, { onDelete: 'cascade' }),
  to: text('to').notNull(),
  /** null: the installation's `notify.document_types`. */
  documentTypes: text('document_types').array(),
  updatedAt: ts('updated_at').notNull().defaultNow(),
});

/** One mail per announced document; the unique key keeps retries from sending twice. */
export const emailDeliveries = pgTable(
  'email_deliveries',
  {
    // Erasing the document (connection, user) erases the record of its mail and address too.
    documentId: bigint('document_id', { mode: 'number' })
      .primaryKey()
      .references(() => documents.id, { onDelete: 'cascade' }),
    userId: bigint('user_id', { mode: 'number' }).notNull(),
    to: text('to').notNull(),
    messageId: text('message_id').notNull(),
    /** 'pending' | 'sending' (an attempt under way, recorded before the SMTP exchange) | 'sent' | 'failed' */
    status: text('status').notNull(),
    error: text('error'),
    attempts: integer('attempts').notNull().default(0),
    /**
     * An attempt's outcome was unknown (the worker stopped while it was `sending`, perhaps
     * after the SMTP server had accepted it) and the mail was sent again, with the same
     * Message-ID: the recipient may have two copies (clients that collapse by Message-ID show one).
     */
    possibleDuplicate: boolean('possible_duplicate').notNull().default(false),
    sentAt: ts('sent_at'),
    updatedAt: ts('updated_at').notNull().defaultNow(),
  },
  // The operator page's last 24 hours, and prune_retention.
  (t) => [index('email_deliveries_updated_at_idx').on(t.updatedAt)],
);
