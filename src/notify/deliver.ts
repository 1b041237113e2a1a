import { and, eq, sql } from 'drizzle-orm';
import { deliveryAttempts, events, messages, webhookEndpoints } from '../db/schema/index.js';
import { failingEndpointQueue } from '../events/record.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { postJson } from './http.js';
import { decide, type Decision } from './retry.js';
import { activeSecrets, signedHeaders } from './signing.js';

export const deliveryTimeoutMs = 15_000;

/** The JSON customers receive: stable across retries (the timestamp is the event's, not the attempt's). */
export function messageBody(e: { type: string; createdAt: Date; data: unknown }): string {
  return JSON.stringify({ type: e.type, timestamp: e.createdAt.toISOString(), data: e.data });
}

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
  const [row] = await deps.db
    .select({ message: messages, endpoint: webhookEndpoints, event: { type: events.type, createdAt: events.createdAt, data: events.data } })
    .from(messages)
    .innerJoin(webhookEndpoints, eq(webhookEndpoints.id, messages.endpointId))
    .innerJoin(events, eq(events.id, messages.eventId))
    .where(eq(messages.id, messageId));
  if (!row) return; // its endpoint or event was deleted since
  const { message, endpoint, event } = row;
  if (message.status !== 'pending' || message.attempts !== attempt - 1) return;
  if (endpoint.disabled) {
    await deps.db
      .update(messages)
      .set({ status: 'failed', nextAttemptAt: null })
      .where(and(eq(messages.id, messageId), eq(messages.status, 'pending')));
    return;
  }
  const lane = failingEndpointQueue(endpoint.id);
  if (endpoint.failingSince && helpers.job.job_queue_id === null) {
    // Became unhealthy since this job was queued: wait in its endpoint's lane instead.
    await enqueue(deps.db, 'deliver_message', { messageId, attempt }, { jobKey: `msg:${messageId}`, queueName: lane });
    return;
  }

  const at = new Date();
  const body = messageBody(event);
  const headers = signedHeaders(messageId, at, body, activeSecrets(endpoint, at));
  const result = await postJson(endpoint.url, body, headers, { timeoutMs: deliveryTimeoutMs, allowPrivate: deps.config.fetchAllowPrivateNetworks });
  const decision = decide(attempt, result, { now: Date.now(), failingSinceMs: endpoint.failingSince?.getTime() ?? null });

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
      error: result.error ?? (decision.kind === 'succeeded' ? null : describeFailure(result.status, decision)),
      durationMs: result.durationMs,
      response: result.response,
    });
    if (decision.kind === 'succeeded') {
      await tx.update(webhookEndpoints).set({ failingSince: null }).where(eq(webhookEndpoints.id, endpoint.id));
    } else if (decision.kind === 'disable_endpoint') {
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
  if (decision.kind !== 'succeeded') {
    deps.log.info({ messageId, endpointId: endpoint.id, attempt, status: result.status, error: result.error, decision: decision.kind }, 'webhook delivery failed');
  }
};

function messageStatus(d: Decision): 'pending' | 'succeeded' | 'failed' {
  return d.kind === 'succeeded' ? 'succeeded' : d.kind === 'retry' ? 'pending' : 'failed';
}

function describeFailure(status: number | null, d: Decision): string {
  const what = status === null ? 'no response' : `HTTP ${status}`;
  if (d.kind === 'disable_endpoint') return `${what}; endpoint disabled (${d.reason})`;
  if (d.kind === 'failed') return `${what}; gave up after the last attempt`;
  return what;
}
