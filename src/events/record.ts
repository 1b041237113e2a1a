import { randomUUID } from 'node:crypto';
import { sql, type SQL } from 'drizzle-orm';
import { sqlArray } from '../db/arrays.js';
import type { Tx } from '../db/client.js';
import type { JobName, JobPayload } from '../jobs/catalog.js';
import { enqueueMany } from '../jobs/enqueue.js';
import { deliveryBatchJobKeySql, failingEndpointQueueSql, messageJobKeySql, svixJobKeySql } from '../jobs/keys.js';

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
 * type but the opt-in ones), and the delivery jobs of the enabled ones (graphile-worker's
 * `add_jobs`, in the same statement: one round trip for the whole outbox write). A
 * disabled endpoint's messages wait, `failed`, for a replay. Endpoints mirrored to Svix
 * (API mode) get no message of ours: one `publish_event` job per event hands it to Svix,
 * which fans out itself.
 *
 * Delivery jobs: a failing endpoint's messages wait in its lane, one job each
 * (notify/deliver.ts); a healthy endpoint's go in `deliver_messages` batch jobs keyed by
 * endpoint and batch number (jobs/keys.ts): messages recorded while such a job waits join
 * it, so a burst makes a few jobs per endpoint, never one per message; a transaction that
 * would wait for another's batch job row takes one of its own connection instead.
 *
 * One statement, prepared like every statement with parameters (db/prepared.ts): one
 * round trip for the whole outbox write, where a separate `add_jobs` made it two more.
 *
 * `priority` (graphile-worker's: smaller first) is that of the delivery jobs: the bills of
 * a backfill are announced at their file batch's priority, and their deliveries must not
 * hold those of fresh bills back either. Their batch jobs have keys of their own, so a
 * fresh message never joins (and waits in) a backfill's batch.
 */
export async function recordEvents(tx: Tx, list: NewEvent[], opts: { priority?: number } = {}): Promise<string[]> {
  if (list.length === 0) return [];
  const rows = list.map((e) => ({ id: newEventId(), dedupe_key: e.dedupeKey, type: e.type, user_id: e.userId, connection_id: e.connectionId, data: e.data }));
  const priority = opts.priority || null;
  const item = (id: SQL) => sql`json_build_object('messageId', ${id}, 'attempt', 1)`;
  const out = await tx.execute<{ kind: 'event' | 'unwritten'; id: string; task: JobName | null; spec: { payload: unknown; queueName: string | null } | null }>(sql`
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
    ),
    sendable as (
      select f.id, f.endpoint_id, f.seq, f.seq / ${deliveryBatchSize}::int as batch, e.failing_since is not null as failing
      from fanout f join webhook_endpoints e on e.id = f.endpoint_id
      where f.status = 'pending'
    ),
    specs as (
      select 'deliver_message' as task, ${item(sql`s.id`)} as payload, ${failingEndpointQueueSql(sql`s.endpoint_id`)} as queue_name, ${messageJobKeySql(sql`s.id`)} as job_key
      from sendable s where s.failing
      union all
      select 'deliver_messages', json_agg(${item(sql`s.id`)} order by s.seq), null, ${deliveryBatchJobKeySql(sql`s.endpoint_id`, sql`s.batch`, priority)}
      from sendable s where not s.failing
      group by s.endpoint_id, s.batch
      union all
      select 'publish_event', json_build_object('eventId', i.id), null, ${svixJobKeySql(sql`i.id`)}
      from inserted i
      where exists (
        select 1 from webhook_endpoints e
        where not e.disabled and e.svix_endpoint_id is not null and ${wants(sql`e`, sql`i.type`)}
      )
    ),
    added as (
      select j.key
      from (select array_agg(row(task, payload, queue_name, null, null, job_key, ${priority}::int, null)::graphile_worker.job_spec) as a from specs) s,
        lateral graphile_worker.add_jobs(s.a) j
      where s.a is not null
    )
    select 'event' as kind, id, null as task, null as spec from inserted
    union all
    select 'unwritten', job_key, task, json_build_object('payload', payload, 'queueName', queue_name)
    from specs where job_key not in (select key from added where key is not null)`);
  // Keyed jobs add_jobs wrote no row for: a worker locked a job of that key between its two
  // steps (see jobs/enqueue.ts). Added again as enqueueMany does, which un-keys the running one.
  const unwritten = out.filter((r) => r.kind === 'unwritten');
  for (const task of new Set(unwritten.map((r) => r.task!))) {
    const jobs = unwritten.filter((r) => r.task === task);
    await enqueueMany(tx, task, jobs.map((r) => ({ payload: r.spec!.payload as JobPayload<typeof task>, jobKey: r.id, queueName: r.spec!.queueName ?? undefined, priority: priority ?? undefined })));
  }
  return out.filter((r) => r.kind === 'event').map((r) => r.id);
}
