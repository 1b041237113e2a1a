import { sql, type SQL } from 'drizzle-orm';
import { sqlArray } from '../db/arrays.js';
import type { Tx } from '../db/client.js';

/**
 * Every job key and queue name, in one place: the code that queues a job and the code
 * that replaces or cancels it must spell its key the same way. A key deduplicates (a job
 * added again under a pending job's key replaces it); see jobs/catalog.ts for the tasks.
 */

/**
 * `fetch_document_file` of one document, as releases before batch jobs keyed it. The
 * batches (`fetch_document_files`, jobs/files.ts) have no key: each document's row in
 * document_files says whether it is still to be fetched.
 */
export const fileJobKey = (documentId: number) => `file:${documentId}`;
/** `render_thumbnails` of the files settled by one file job (its id). */
export const thumbnailJobKey = (fileJob: string) => `thumbnails:${fileJob}`;
/** `announce_document` of one document whose file is settled (the sync's, the sweep's, and older releases'). */
export const announceJobKey = (documentId: number) => `announce:${documentId}`;
/**
 * `announce_documents` of the files settled by one file batch job (its id): each settled
 * file joins its batch's announcement while that waits (graphile-worker merges array
 * payloads under one key); once it runs, the next file starts another.
 */
export const announceBatchJobKey = (fileJob: string) => `announce:batch:${fileJob}`;
/** `send_document_email` of one announced document. */
export const emailJobKey = (documentId: number) => `email:${documentId}`;
// Each prefix is written once for both spellings below: a key made in TypeScript (a retry,
// the sweep) and one made by PostgreSQL (the recording statement) must be the same key.
const messageKeyPrefix = 'msg:';
/** `deliver_message` of one message: its next attempt. */
export const messageJobKey = (messageId: string) => `${messageKeyPrefix}${messageId}`;
/** The same, spelt by PostgreSQL (events/record.ts queues jobs in its recording statement). */
export const messageJobKeySql = (messageId: SQL) => sql`${messageKeyPrefix}::text || ${messageId}`;

/**
 * `deliver_messages`, the batch job of a healthy endpoint's first attempts (events/record.ts),
 * spelt by PostgreSQL: endpoint, priority (a backfill's bills, delivered at a priority
 * other than 0, have keys of their own) and batch number (`seq` / batch size, so that no
 * job grows past the batch size). Messages recorded while the job waits join it
 * (graphile-worker concatenates array payloads under one key).
 *
 * Adding to a keyed job locks its row until the transaction commits, so transactions
 * sharing a key committed one after the other: on the streamed bench the producers spent
 * most of their time waiting for that lock (pg_stat_activity: `Lock:transactionid` on the
 * recording statement). So a transaction takes the shared key only if no other
 * transaction holds it (an advisory lock tried, never waited for); otherwise its messages
 * go to a key of its own connection (`c<pid>`, which runs one transaction at a time), and
 * no recording ever waits for another's commit. The price: fewer messages per job when
 * transactions overlap (the shared key's job no longer waits, locked, for all of them).
 */
export const deliveryBatchJobKeySql = (endpointId: SQL, batch: SQL, priority: number | null) => {
  const prefix = sql`'deliver:' || ${endpointId} || ${sql.raw(priority ? `':p${Number(priority)}:'` : "':'")}`;
  return sql`case when pg_try_advisory_xact_lock(${sql.raw(String(batchKeyLock))}, hashtext(${prefix} || ${batch}))
    then ${prefix} || ${batch}
    else ${prefix} || 'c' || pg_backend_pid() || ':' || ${batch} end`;
};
/** The first half of the advisory locks on shared batch keys ("dlvr"; the others' differ). */
const batchKeyLock = 0x646c7672;
/** `publish_event` of one event, in Svix API mode, spelt by PostgreSQL. */
export const svixJobKeySql = (eventId: SQL) => sql`'svix:' || ${eventId}`;
/** `send_ops_webhook` and `send_ops_email` of one operational event (notify/ops-events.ts). */
export const opsWebhookJobKey = (opsEventId: string) => `ops-webhook:${opsEventId}`;
export const opsEmailJobKey = (opsEventId: string) => `ops-email:${opsEventId}`;
/** `captcha_resync` of one connection: at most one pending retry per connection. */
export const captchaJobKey = (connectionId: number) => `captcha:${connectionId}`;

const failingQueuePrefix = 'notify:';
/**
 * The queue of a failing endpoint's deliveries. Healthy endpoints' messages run in no
 * queue (in parallel, as fast as the worker goes); once an endpoint fails, its messages
 * are delivered one at a time in this queue, so a slow or dead receiver holds at most one
 * worker slot however many messages it has waiting (see notify/deliver.ts).
 */
export const failingEndpointQueue = (endpointId: string) => `${failingQueuePrefix}${endpointId}`;
export const failingEndpointQueueSql = (endpointId: SQL) => sql`${failingQueuePrefix}::text || ${endpointId}`;

/** Cancel the jobs of these keys on the caller's transaction (graphile-worker lets one already running finish, and not retry). */
export async function removeJobs(tx: Tx, keys: readonly string[]): Promise<void> {
  if (keys.length === 0) return;
  await tx.execute(sql`select graphile_worker.remove_job(k) from unnest(${sqlArray(keys, 'text')}) as k`);
}
