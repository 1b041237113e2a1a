import { index, jsonb, pgTable, text, timestamp } from 'drizzle-orm/pg-core';

/**
 * Operational events for the operator (OPS_WEBHOOK_URL, OPS_EMAIL): `endpoint.failing`,
 * `endpoint.disabled` (notify/ops-events.ts). `dedupeKey` is what makes each one happen
 * once: `endpoint.failing:<endpoint>:<UTC day>` — a second worker, or a second failure the
 * same day, finds it taken. The row also keeps the payload, so every retry of the webhook
 * and of the mail sends the same thing.
 */
export const opsEvents = pgTable(
  'ops_events',
  {
    id: text('id').primaryKey(),
    dedupeKey: text('dedupe_key').notNull().unique(),
    type: text('type').notNull(),
    endpointId: text('endpoint_id'),
    data: jsonb('data').notNull(),
    createdAt: timestamp('created_at', { withTimezone: true, mode: 'date' }).notNull().defaultNow(),
  },
  (t) => [index('ops_events_endpoint_idx').on(t.endpointId, t.createdAt)],
);
