import { randomUUID } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import { sqlArray } from '../db/arrays.js';
import type { Tx } from '../db/client.js';
import type { JobPayload } from '../jobs/catalog.js';
import { enqueueMany } from '../jobs/enqueue.js';
import { deliveryBatchJobKey, failingEndpointQueue, messageJobKey, svixJobKey } from '../jobs/keys.js';

/**
 * The events customers receive (README, introduction, point 3). Recorded in the transaction
 * of the change that caused them (the outbox pattern): if the change commits, the event,
 * its messages and their delivery jobs exist; if it rolls back, none of them ever did.
 */

export type EventType =
  | 'document.created'
  | 'subscription.created'
  | 'subscription.deleted'
  | 'subscription.restored'
  | 'connection.captcha_gave_up'
  | 'connection.recovered'
  | 'document.duplicate';

export const eventTypes: readonly EventType[] = [
  'document.created',
  'subscription.created',
  'subscription.deleted',
  'subscription.restored',
  'connection.captcha_gave_up',
  'connection.recovered',
  'document.duplicate',
];

/**
 * Types sent only to endpoints that list them: an endpoint with empty `events` (all) does
 * not get them. `document.duplicate` is news to no one who did not ask for it.
 */
export const optInEventTypes: readonly EventType[] = ['document.duplicate'];
/** What an endpoint with empty `events` receives. */
export const defaultEventTypes: readonly EventType[] = eventTypes.filter((t) => !optInEventTypes.includes(t));

export interface NewEvent {
  type: EventType;
  /** Makes recording idempotent: the same key is recorded once (e.g. `document.created:9001`). */
  dedupeKey: string;
  userId: number | null;
  /** The connection it is about: erasing the connection erases the event (and its undelivered messages). */
  connectionId: number | null;
  data: unknown;
}

export const newEventId = () => `evt_${randomUUID().replaceAll('-', '')}`;

/** At most this many messages in one `deliver_messages` job. */
export const deliveryBatchSize = 100;

/** Whether endpoint `e` wants an event of type `type`: listed, or empty `events` and not opt-in. */
const wants = (e: SQL, type: SQL) =>
  sql`(${type} = any(${e}.events) or (cardinality(${e}.events) = 0 and not (${type} = any(${sqlArray(optInEventTypes, 'text')}))))`;

/**
 * Record events and fan them out; returns the ids of the events not recorded before.
 *
 * Set-based, one statement whatever the number of events and endpoints: insert the events
 * (a known dedupe key is skipped, so an event and its messages are made once), one
 * `messages` row per new event and endpoint that wants its type (empty `events`: every
 * type but the opt-in ones), then the delivery jobs of the enabled ones (batched per
 * healthy endpoint; a disabled endpoint's messages wait, `failed`, for a replay). Endpoints mirrored to Svix (API
 * mode) get no message of ours: one `publish_event` job per event hands it to Svix, which
 * fans out itself.
 *
 * `priority` (graphile-worker's: smaller first) is that of the delivery jobs: the bills of
 * a backfill are announced at their file batch's priority, and their deliveries must not
 * hold those of fresh bills back either. Their batch jobs have keys of their own, so a
 * fresh message never joins (and waits in) a backfill's batch.
 */
export async function recordEvents(tx: Tx, list: NewEvent[], opts: { priority?: number } = {}): Promise<string[]> {
  if (list.length === 0) return [];
  const rows = list.map((e) => ({ id: newEventId(), dedupe_key: e.dedupeKey, type: e.type, user_id: e.userId, connection_id: e.connectionId, data: e.data }));
  const out = await tx.execute<{ kind: 'event' | 'message' | 'svix'; id: string; endpoint_id: string | null; failing: boolean | null; seq: string | null }>(sql`
    with inserted as (
      insert into events (id, dedupe_key, type, user_id, connection_id, data)
      select id, dedupe_key, type, user_id, connection_id, data
      from jsonb_to_recordset(${JSON.stringify(rows)}::text::jsonb) as x(id text, dedupe_key text, type text, user_id bigint, connection_id bigint, data jsonb)
      on conflict (dedupe_key) do nothing
      returning id, type
    ),
    fanout as (
      -- A disabled endpoint's messages are recorded too (as Svix does), already 'failed' and
      -- without a job: what it missed is sent by a replay or by enabling it (notify/resend.ts).
      insert into messages (id, event_id, endpoint_id, status)
      select 'msg_' || replace(gen_random_uuid()::text, '-', ''), i.id, e.id, case when e.disabled then 'failed' else 'pending' end
      from inserted i
      join webhook_endpoints e
        on e.svix_endpoint_id is null and ${wants(sql`e`, sql`i.type`)}
      returning id, endpoint_id, status, nextval('message_batch_seq') as seq
    )
    select 'event' as kind, id, null as endpoint_id, null as failing, null as seq from inserted
    union all
    select 'message', f.id, f.endpoint_id, e.failing_since is not null, f.seq
    from fanout f join webhook_endpoints e on e.id = f.endpoint_id
    where f.status = 'pending'
    union all
    select 'svix', i.id, null, null, null from inserted i
    where exists (
      select 1 from webhook_endpoints e
      where not e.disabled and e.svix_endpoint_id is not null and ${wants(sql`e`, sql`i.type`)}
    )`);
  const messages = out.filter((r) => r.kind === 'message');
  const priority = opts.priority || undefined;
  // A failing endpoint's messages wait in its lane, one job each (notify/deliver.ts).
  await enqueueMany(
    tx,
    'deliver_message',
    messages
      .filter((m) => m.failing)
      .map((m) => ({ payload: { messageId: m.id, attempt: 1 }, jobKey: messageJobKey(m.id), queueName: failingEndpointQueue(m.endpoint_id!), priority })),
  );
  // Healthy endpoints: batch jobs keyed by endpoint and batch number. Messages fanned out
  // while such a job waits join it (graphile-worker concatenates array payloads under one
  // key), so a burst of events makes a few jobs per endpoint, never one per message.
  const batches = new Map<string, JobPayload<'deliver_messages'>>();
  for (const m of messages.filter((m) => !m.failing)) {
    const key = deliveryBatchJobKey(m.endpoint_id!, Number(m.seq), deliveryBatchSize, priority);
    const batch = batches.get(key) ?? [];
    batch.push({ messageId: m.id, attempt: 1 });
    batches.set(key, batch);
  }
  await enqueueMany(tx, 'deliver_messages', [...batches].map(([jobKey, payload]) => ({ payload, jobKey, priority })));
  const toSvix = out.filter((r) => r.kind === 'svix');
  await enqueueMany(tx, 'publish_event', toSvix.map((e) => ({ payload: { eventId: e.id }, jobKey: svixJobKey(e.id) })));
  return out.filter((r) => r.kind === 'event').map((r) => r.id);
}
