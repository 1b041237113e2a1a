import { and, eq, sql } from 'drizzle-orm';
import { deliveryAttempts, messages, webhookEndpoints } from '../db/schema/index.js';
import { failingEndpointQueue } from '../events/record.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import type { Db } from '../db/client.js';
import { postJson, type PostResult } from './http.js';
import { decide, type Decision } from './retry.js';
import { activeSecrets, signedHeaders } from './signing.js';

export const deliveryTimeoutMs = 15_000;

/**
 * The JSON customers receive, built by PostgreSQL from the event row (the stored `data` is
 * never parsed and re-serialised here): `{type, timestamp, data}`, the same bytes on every
 * retry — the timestamp is the event's, not the attempt's.
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
  failing_since_ms: string | number | null;
  body: string;
};

/**
 * deliver_message — one attempt of one message, then its outcome, in one transaction:
 * the attempt log row, the message's state, the endpoint's health and, on failure, the
 * job of the next attempt (its `run_at` is the retry schedule's). One attempt per job,
 * never a sleep inside a job: a worker slot is held for at most one request (≤ 15 s).
 *
 * Isolation: messages of healthy endpoints run in no queue, in parallel. Once an endpoint
 * fails, its jobs move to the endpoint's own queue (one at a time), so a slow or dead
 * receiver holds at most one worker slot while the others keep delivering; its first
 * success brings new messages back to the parallel path. (A queue for every endpoint all
 * the time would make a single busy endpoint deliver one message at a time.)
 *
 * At least once, never lost: nothing is recorded before the answer comes, so a worker
 * killed mid-request leaves the job locked, graphile-worker frees it later and the same
 * attempt is made again with the same `webhook-id`. A job whose attempt is already
 * recorded (a duplicate) does nothing.
 */
export const deliverMessage: JobHandlerFactory<'deliver_message'> = (deps) => async ({ messageId, attempt }, helpers) => {
  const [m] = await deps.db.execute<MessageToSend>(sql`
    select m.status, m.attempts, e.id as endpoint_id, e.url, e.disabled, e.secret, e.previous_secret,
      extract(epoch from e.previous_secret_expires_at) * 1000 as previous_secret_expires_ms,
      extract(epoch from e.failing_since) * 1000 as failing_since_ms,
      ${bodySql} as body
    from messages m
    join webhook_endpoints e on e.id = m.endpoint_id
    join events ev on ev.id = m.event_id
    where m.id = ${messageId}`);
  if (!m) return; // its endpoint or event was deleted since
  if (m.status !== 'pending' || m.attempts !== attempt - 1) return;
  if (m.disabled) {
    await deps.db
      .update(messages)
      .set({ status: 'failed', nextAttemptAt: null })
      .where(and(eq(messages.id, messageId), eq(messages.status, 'pending')));
    return;
  }
  const endpoint = {
    id: m.endpoint_id,
    secret: m.secret,
    previousSecret: m.previous_secret,
    previousSecretExpiresAt: m.previous_secret_expires_ms === null ? null : new Date(Number(m.previous_secret_expires_ms)),
    failingSince: m.failing_since_ms === null ? null : new Date(Number(m.failing_since_ms)),
  };
  const lane = failingEndpointQueue(endpoint.id);
  if (endpoint.failingSince && helpers.job.job_queue_id === null) {
    // Became unhealthy since this job was queued: wait in its endpoint's lane instead.
    await enqueue(deps.db, 'deliver_message', { messageId, attempt }, { jobKey: `msg:${messageId}`, queueName: lane });
    return;
  }

  const at = new Date();
  const body = m.body;
  const headers = signedHeaders(messageId, at, body, activeSecrets(endpoint, at));
  const result = await postJson(m.url, body, headers, { timeoutMs: deliveryTimeoutMs, allowPrivate: deps.config.fetchAllowPrivateNetworks });
  const decision = decide(attempt, result, { now: Date.now(), failingSinceMs: endpoint.failingSince?.getTime() ?? null });

  if (decision.kind === 'succeeded') {
    await recordSuccess(deps.db, { messageId, endpointId: endpoint.id, attempt, result });
    return;
  }
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
    if (decision.kind === 'disable_endpoint') {
      await tx
        .update(webhookEndpoints)
        .set({ disabled: true, disabledReason: decision.reason, failingSince: sql`coalesce(${webhookEndpoints.failingSince}, now())` })
        .where(eq(webhookEndpoints.id, endpoint.id));
    } else {
      await tx
        .update(webhookEndpoints)
        .set({ failingSince: sql`coalesce(${webhookEndpoints.failingSince}, now())` })
        .where(eq(webhookEndpoints.id, endpoint.id));
    }
    if (decision.kind === 'retry') {
      await enqueue(tx, 'deliver_message', { messageId, attempt: attempt + 1 }, { jobKey: `msg:${messageId}`, runAt: nextAt!, queueName: lane });
    }
  });
  deps.log.info({ messageId, endpointId: endpoint.id, attempt, status: result.status, error: result.error, decision: decision.kind }, 'webhook delivery failed');
};

/**
 * The common case in one statement (atomic on its own, one round trip): the message
 * succeeded, its attempt is logged, and the endpoint's failure run — if there was one —
 * ends. The endpoint row is only written when it was failing, so parallel deliveries to
 * one busy endpoint never queue on its row lock.
 */
async function recordSuccess(db: Db, a: { messageId: string; endpointId: string; attempt: number; result: PostResult }) {
  await db.execute(sql`
    with m as (
      update messages set attempts = ${a.attempt}, status = 'succeeded', next_attempt_at = null
      where id = ${a.messageId} and status = 'pending' and attempts = ${a.attempt - 1}
      returning id
    ),
    logged as (
      insert into delivery_attempts (message_id, endpoint_id, attempt, status_code, error, duration_ms, response)
      select id, ${a.endpointId}, ${a.attempt}, ${a.result.status}, null, ${a.result.durationMs}, ${a.result.response} from m
    )
    update webhook_endpoints set failing_since = null
    where id = ${a.endpointId} and failing_since is not null and exists (select 1 from m)`);
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
