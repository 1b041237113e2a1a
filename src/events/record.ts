import { randomUUID } from 'node:crypto';
import { sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';

/**
 * The events customers receive (CONTRACT.md §8). Recorded in the transaction of the change
 * that caused them (the outbox pattern): if the change commits, the event exists; if it
 * rolls back, it never did.
 */
export type EventType =
  | 'document.created'
  | 'subscription.created'
  | 'subscription.deleted'
  | 'subscription.restored'
  | 'connection.captcha_gave_up'
  | 'connection.recovered';

export interface NewEvent {
  type: EventType;
  /** Makes recording idempotent: the same key is recorded once (e.g. `document.created:9001`). */
  dedupeKey: string;
  userId: number | null;
  data: unknown;
}

export const newEventId = () => `evt_${randomUUID().replaceAll('-', '')}`;

/** Record events; returns the ids of those not recorded before. */
export async function recordEvents(tx: Tx, list: NewEvent[]): Promise<string[]> {
  if (list.length === 0) return [];
  const rows = list.map((e) => ({ id: newEventId(), dedupe_key: e.dedupeKey, type: e.type, user_id: e.userId, data: e.data }));
  const inserted = await tx.execute<{ id: string }>(sql`
    insert into events (id, dedupe_key, type, user_id, data)
    select id, dedupe_key, type, user_id, data
    from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as x(id text, dedupe_key text, type text, user_id bigint, data jsonb)
    on conflict (dedupe_key) do nothing
    returning id`);
  const ids = inserted.map((r) => r.id);
  // Fan-out to endpoints and mail happens here, in the same transaction (notifications issue).
  return ids;
}
