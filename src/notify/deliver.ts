import { and, eq, sql } from 'drizzle-orm';
import { sqlArray } from '../db/arrays.js';
import { deliveryAttempts, messages, webhookEndpoints } from '../db/schema/index.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { failingEndpointQueue, messageJobKey } from '../jobs/keys.js';
import type { Db } from '../db/client.js';
import type { Deps } from '../deps.js';
import { enqueueMany } from '../jobs/enqueue.js';
import type { PostResult } from './http.js';
import { warnDisabled, warnIfFailing } from './ops-events.js';
import { nextStepAfterAttempt, type Decision } from './retry.js';
import { withFreshFileLinks } from './fresh-links.js';
import { activeSecrets, signedHeaders } from './signing.js';

export const deliveryTimeoutMs = 15_000;

/**
 * The JSON customers receive, built by PostgreSQL from the event row (the stored `data` is
 * never parsed and re-serialised here): `{type, timestamp, data}`, the same on every retry —
 * the timestamp is the event's, not the attempt's — but for its file links, signed afresh
 * for each attempt (fresh-links.ts).
 */
const bodySql = sql`json_build_object('type', ev.type, 'timestamp', to_json(ev.created_at), 'data', ev.data)::text`;

type MessageToSend = {
  status: string;
  attempts: number;
  endpoint_id: string;
  url: string;
  disabled: boolean;
  secret: string;
  previous_secret: string | null;
  previous_secret_expires_ms: string | number | null;
  older_secrets: { secret: string; expiresAt: string }[];
  failing_since_ms: string | number | null;
  body: string;
};

type Item = { messageId: string; attempt: number };

/**
 * deliver_message — one attempt of one message: a retry, a replay, or a first attempt to
 * an endpoint that is failing (those wait in the endpoint's own queue, see below).
 * deliver_messages — the first attempts of a batch of messages to healthy endpoints (a
 * graphile-worker batch job, events/record.ts). Both are the same work on a list.
 *
 * Each attempt's outcome is recorded with the attempt log row, the message's state, the
 * endpoint's health and, on failure, the job of the next attempt (its `run_at` is the
 * retry schedule's). Never a sleep inside a job: a worker slot is held for at most one
 * round of requests (≤ 15 s).
 *
 * Isolation: messages of healthy endpoints run in no queue, in parallel. Once an endpoint
 * fails, its jobs move to the endpoint's own queue (one at a time), so a slow or dead
 * receiver holds at most one worker slot while the others keep delivering; its first
 * success brings new messages back to the parallel path. (A queue for every endpoint all
 * the time would make a single busy endpoint deliver one message at a time.)
 *
 * At least once, never lost: nothing is recorded before the answer comes, so a worker
 * killed mid-request leaves the job locked, graphile-worker frees it later and the same
 * attempts are made again with the same `webhook-id`s. An item whose attempt is already
 * recorded (a duplicate) is skipped.
 */
export const deliverMessage: JobHandlerFactory<'deliver_message'> = (deps) => async (item, helpers) =>
  deliverAll(deps, [item], helpers.job.job_queue_id !== null);

export const deliverMessages: JobHandlerFactory<'deliver_messages'> = (deps) => async (items, helpers) =>
  deliverAll(deps, items, helpers.job.job_queue_id !== null);

/** Requests in flight at once within one job. */
const parallelRequests = 16;

async function deliverAll(deps: Deps, items: Item[], inQueue: boolean): Promise<void> {
  const rows = await deps.db.execute<MessageToSend & { id: string }>(sql`
    select m.id, m.status, m.attempts, e.id as endpoint_id, e.url, e.disabled, e.secret, e.previous_secret,
      extract(epoch from e.previous_secret_expires_at) * 1000 as previous_secret_expires_ms, e.older_secrets,
      extract(epoch from e.failing_since) * 1000 as failing_since_ms,
      ${bodySql} as body
    from messages m
    join webhook_endpoints e on e.id = m.endpoint_id
    join events ev on ev.id = m.event_id
    where m.id = any(${sqlArray(items.map((i) => i.messageId), 'text')})`);
  const byId = new Map(rows.map((r) => [r.id, r]));

  const toSend: { item: Item; m: MessageToSend; endpoint: EndpointState }[] = [];
  const disabled: string[] = [];
  const toLane: Item[] = [];
  for (const item of items) {
    const m = byId.get(item.messageId);
    // Gone (its endpoint or event was deleted since), or this attempt was already made.
    if (!m || m.status !== 'pending' || m.attempts !== item.attempt - 1) continue;
    if (m.disabled) disabled.push(item.messageId);
    else {
      const endpoint = endpointState(m);
      // Became unhealthy since this job was queued: wait in its endpoint's lane instead.
      if (endpoint.failingSince && !inQueue) toLane.push(item);
      else toSend.push({ item, m, endpoint });
    }
  }
  if (disabled.length) await markFailed(deps.db, disabled);
  await enqueueMany(
    deps.db,
    'deliver_message',
    toLane.map((item) => ({ payload: item, jobKey: messageJobKey(item.messageId), queueName: failingEndpointQueue(byId.get(item.messageId)!.endpoint_id) })),
  );

  // The first message of each endpoint goes alone, the rest after it in parallel: an
  // endpoint that answers 410 Gone (or is disabled by that attempt) gets nothing more from
  // this job — not the other 99 of its batch. Those stay for a replay, as `failed`.
  const stopped = new Set<string>();
  const attempt = async ({ item, m, endpoint }: (typeof toSend)[number]) => {
    if (stopped.has(endpoint.id)) return null;
    const at = new Date();
    const body = withFreshFileLinks(m.body, deps.links, at.getTime());
    const headers = signedHeaders(item.messageId, at, body, activeSecrets(endpoint, at));
    const result = await deps.notify.webhooks.post(m.url, body, headers, { timeoutMs: deliveryTimeoutMs });
    const decision = nextStepAfterAttempt(item.attempt, result, { now: Date.now(), failingSinceMs: endpoint.failingSince?.getTime() ?? null });
    if (decision.kind === 'disable_endpoint') stopped.add(endpoint.id);
    return { item, endpoint, result, decision };
  };
  const firsts = toSend.filter((x, i) => toSend.findIndex((y) => y.endpoint.id === x.endpoint.id) === i);
  const rest = toSend.filter((x) => !firsts.includes(x));
  const made = [...(await mapBounded(firsts, parallelRequests, attempt)), ...(await mapBounded(rest, parallelRequests, attempt))];
  const results = made.filter((r) => r !== null);
  const notSent = toSend.filter((x) => stopped.has(x.endpoint.id) && !results.some((r) => r.item === x.item)).map((x) => x.item.messageId);
  if (notSent.length) await markFailed(deps.db, notSent);

  for (const { endpoint, result, decision } of results) {
    deps.metrics.deliveries.inc({ endpoint: endpoint.id, outcome: decision.kind === 'succeeded' ? 'succeeded' : 'failed' });
    deps.metrics.deliveryDuration.observe({ endpoint: endpoint.id }, result.durationMs / 1000);
  }
  const succeeded = results.filter((r) => r.decision.kind === 'succeeded');
  const unrecorded: unknown[] = [];
  try {
    await recordSuccesses(deps.db, succeeded);
  } catch {
    // One attempt the batch statement cannot take must not cost the others their record
    // (and a second POST each): record them one by one.
    for (const r of succeeded) await recordEach(r, (x) => recordSuccesses(deps.db, [x]), unrecorded);
  }
  for (const r of results.filter((r) => r.decision.kind !== 'succeeded')) {
    await recordEach(r, (x) => recordFailure(deps, x.item, x.endpoint, x.result, x.decision), unrecorded);
  }
  if (unrecorded.length) {
    // The job fails and is retried; the attempts recorded above are skipped then.
    deps.log.error({ count: unrecorded.length, err: unrecorded[0] }, 'webhook delivery attempts could not be recorded');
    throw new Error(`${unrecorded.length} delivery attempts could not be recorded`);
  }
}

/** Record one attempt; if that fails, once more without the receiver's answer (the only part a receiver controls). */
async function recordEach<R extends { result: PostResult }>(r: R, write: (r: R) => Promise<void>, unrecorded: unknown[]) {
  try {
    await write(r);
  } catch {
    await write({ ...r, result: { ...r.result, response: '[response not recordable]' } }).catch((err) => unrecorded.push(err));
  }
}

/** Messages not sent because their endpoint is disabled: `failed`, for a replay or `enable` to send. */
async function markFailed(db: Db, ids: string[]) {
  await db.execute(sql`
    update messages set status = 'failed', next_attempt_at = null
    where id = any(${sqlArray(ids, 'text')}) and status = 'pending'`);
}

type EndpointState = {
  id: string;
  secret: string;
  previousSecret: string | null;
  previousSecretExpiresAt: Date | null;
  olderSecrets: { secret: string; expiresAt: string }[];
  failingSince: Date | null;
};

function endpointState(m: MessageToSend): EndpointState {
  return {
    id: m.endpoint_id,
    secret: m.secret,
    previousSecret: m.previous_secret,
    previousSecretExpiresAt: m.previous_secret_expires_ms === null ? null : new Date(Number(m.previous_secret_expires_ms)),
    olderSecrets: m.older_secrets,
    failingSince: m.failing_since_ms === null ? null : new Date(Number(m.failing_since_ms)),
  };
}

/** `fn` over `items`, at most `limit` at a time, results in order. */
async function mapBounded<T, R>(items: T[], limit: number, fn: (x: T) => Promise<R>): Promise<R[]> {
  const out: R[] = new Array(items.length);
  let next = 0;
  const lane = async () => {
    while (next < items.length) {
      const i = next++;
      out[i] = await fn(items[i]);
    }
  };
  await Promise.all(Array.from({ length: Math.min(limit, items.length) }, lane));
  return out;
}

/** A failed attempt, in one transaction: log it, update the message and endpoint, queue the next. */
async function recordFailure(deps: Deps, item: Item, endpoint: EndpointState, result: PostResult, decision: Decision) {
  const { messageId, attempt } = item;
  const lane = failingEndpointQueue(endpoint.id);
  await deps.db.transaction(async (tx) => {
    const nextAt = decision.kind === 'retry' ? new Date(Date.now() + decision.delayMs) : null;
    const claimed = await tx
      .update(messages)
      .set({ attempts: attempt, status: messageStatus(decision), nextAttemptAt: nextAt })
      .where(and(eq(messages.id, messageId), eq(messages.status, 'pending'), eq(messages.attempts, attempt - 1)))
      .returning({ id: messages.id });
    if (claimed.length === 0) return; // another job recorded this attempt meanwhile
    await tx.insert(deliveryAttempts).values({
      messageId,
      endpointId: endpoint.id,
      attempt,
      statusCode: result.status,
      error: result.error ?? describeFailure(result.status, decision),
      durationMs: result.durationMs,
      response: result.response,
    });
    const [run] = await tx
      .update(webhookEndpoints)
      .set({ failingSince: sql`coalesce(${webhookEndpoints.failingSince}, now())` })
      .where(eq(webhookEndpoints.id, endpoint.id))
      .returning({ failingSince: webhookEndpoints.failingSince });
    // Disabled by this attempt, not by another one just before it: the operator hears it once.
    const disabledNow =
      decision.kind === 'disable_endpoint' &&
      (await tx
        .update(webhookEndpoints)
        .set({ disabled: true, disabledReason: decision.reason })
        .where(and(eq(webhookEndpoints.id, endpoint.id), eq(webhookEndpoints.disabled, false)))
        .returning({ id: webhookEndpoints.id })).length > 0;
    if (disabledNow) await warnDisabled(tx, deps.config, endpoint.id, `${messageId}:${attempt}`);
    else if (decision.kind !== 'disable_endpoint') await warnIfFailing(tx, deps.config, endpoint.id, run?.failingSince ?? null);
    if (decision.kind === 'retry') {
      await enqueue(tx, 'deliver_message', { messageId, attempt: attempt + 1 }, { jobKey: messageJobKey(messageId), runAt: nextAt!, queueName: lane });
    }
  });
  deps.log.info({ messageId, endpointId: endpoint.id, attempt, status: result.status, error: result.error, decision: decision.kind }, 'webhook delivery failed');
}

/**
 * The common case, every success of a round in one statement (atomic, one round trip):
 * the messages succeeded, their attempts are logged, and the endpoints' failure runs — where
 * there was one — end. An endpoint row is only written when it was failing, so parallel
 * deliveries to one busy endpoint never queue on its row lock.
 */
async function recordSuccesses(db: Db, done: { item: Item; endpoint: EndpointState; result: PostResult }[]) {
  if (done.length === 0) return;
  const rows = done.map((d) => ({
    message_id: d.item.messageId,
    endpoint_id: d.endpoint.id,
    attempt: d.item.attempt,
    status_code: d.result.status,
    duration_ms: d.result.durationMs,
    response: d.result.response,
  }));
  await db.execute(sql`
    with input as (
      select * from json_to_recordset(${JSON.stringify(rows)}::text::json)
        as x(message_id text, endpoint_id text, attempt int, status_code int, duration_ms int, response text)
    ),
    m as (
      update messages set attempts = input.attempt, status = 'succeeded', next_attempt_at = null
      from input
      where messages.id = input.message_id and messages.status = 'pending' and messages.attempts = input.attempt - 1
      returning messages.id
    ),
    logged as (
      insert into delivery_attempts (message_id, endpoint_id, attempt, status_code, error, duration_ms, response)
      select input.message_id, input.endpoint_id, input.attempt, input.status_code, null, input.duration_ms, input.response
      from input join m on m.id = input.message_id
    )
    update webhook_endpoints set failing_since = null
    where failing_since is not null
      and id in (select input.endpoint_id from input join m on m.id = input.message_id)`);
}

function messageStatus(d: Decision): 'pending' | 'succeeded' | 'failed' {
  return d.kind === 'succeeded' ? 'succeeded' : d.kind === 'retry' ? 'pending' : 'failed';
}

function describeFailure(status: number | null, d: Decision): string {
  const what = status === null ? 'no response' : `HTTP ${status}`;
  if (d.kind === 'disable_endpoint') return `${what}; endpoint disabled (${d.reason})`;
  if (d.kind === 'failed') return `${what}; gave up after the last attempt`;
  return what;
}
