import { and, desc, eq, isNull, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { captchaAttempts, connections } from '../db/schema/index.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { captchaJobKey } from '../jobs/keys.js';
import type { Logger } from '../logger.js';
import { readSettings } from '../settings.js';
import { addHistoryIfPresent } from '../archive/captcha/history.js';
import { BACKOFF_CAP_MS, upstreamBackoffMs, type SyncState } from '../archive/captcha/policy.js';
import { holdCaptchaSwitch, RESYNC_MAX_ATTEMPTS, trackCaptcha } from '../archive/captcha/track.js';
import { requestResync } from './upstream.js';

/**
 * captcha_resync — ask the aggregator to re-sync one connection.
 *
 * The job is done once the aggregator *accepted* the request: whether the captcha is gone
 * is for the next CONNECTION_SYNCED to say (trackCaptcha counts it, schedules the next
 * retry, gives up or recovers). So an accepted request clears `next_retry_at` (nothing is
 * due any more, an outcome is awaited).
 *
 * An error of the aggregator's API (unreachable, timed out, any non-2xx) is not a captcha
 * failure: the captcha was not even tried. It is counted apart (`captcha.upstream_errors`,
 * `upstream_error`, reset when a request is accepted), logged in the history, and the job
 * queues its next try itself after upstreamBackoffMs (1 min doubling to 1 h), for as long
 * as it takes: it neither counts an attempt nor gives up.
 *
 * An accepted request whose sync never reports back would leave the connection `retrying`
 * for ever, so acceptance queues a follow-up (same job key) after OUTCOME_WAIT_MS. A sync
 * that comes back replaces it (another captcha failure: the next retry) or cancels it
 * (success); if it runs and nothing came back since the request, that silence counts as
 * one captcha failure and the decision table goes on (the next retry, or gave_up at
 * captcha.max_retries). The job tells the two runs apart by the row: `next_retry_at` is
 * set while a retry is due and cleared once a request was accepted.
 *
 * The HTTP call is made outside any transaction (no row lock held over the network), so
 * the row is re-checked when the result is written: a sync, a config switch or an erasure
 * may have happened meanwhile, and then the result only goes to the history (if the
 * connection still exists).
 */
/** How long an accepted re-sync may stay unanswered: the longest wait between two retries. */
export const OUTCOME_WAIT_MS = BACKOFF_CAP_MS;

export const captchaResync: JobHandlerFactory<'captcha_resync'> = (deps) => {
  const log = deps.log.child({ task: 'captcha_resync' });
  let toldNoUpstream = false;

  return async ({ connectionId }) => {
    const [conn] = await deps.db
      .select({
        userId: connections.userId,
        status: connections.captchaStatus,
        attempts: connections.captchaAttempts,
        nextRetryAt: connections.captchaNextRetryAt,
        upstreamErrors: connections.captchaUpstreamErrors,
      })
      .from(connections)
      .where(eq(connections.id, connectionId));
    // Erased, recovered, given up or switched off since this was queued: nothing to ask.
    if (!conn || conn.status !== 'retrying') return;
    // Only if the connection is still where this job found it.
    const unchanged = and(eq(connections.id, connectionId), eq(connections.captchaStatus, 'retrying'), eq(connections.captchaAttempts, conn.attempts));

    if (conn.nextRetryAt === null) {
      const decision = await deps.db.transaction((tx) => countSilence(tx, connectionId, and(unchanged, isNull(connections.captchaNextRetryAt)), log));
      if (decision) log.warn({ connectionId, attempts: conn.attempts + 1, decision: decision.kind }, `captcha re-sync counted as failed: ${SILENCE}`);
      return;
    }

    const upstreamUrl = deps.config.upstreamApiUrl;
    if (!upstreamUrl) {
      if (!toldNoUpstream) {
        toldNoUpstream = true;
        log.warn('UPSTREAM_API_URL is not set: captcha re-syncs are tracked (captcha.next_retry_at) but not requested from the aggregator');
      }
      await addHistoryIfPresent(deps.db, connectionId, { kind: 'resync_not_requested', attempt: conn.attempts, detail: 'UPSTREAM_API_URL is not set' });
      return;
    }

    const result = await requestResync({ url: upstreamUrl, token: deps.config.upstreamApiToken }, conn.userId, connectionId);

    if (result.ok) {
      await deps.db.transaction(async (tx) => {
        await addHistoryIfPresent(tx, connectionId, { kind: 'resync_requested', attempt: conn.attempts, detail: `HTTP ${result.status}` });
        // Nothing is due any more, an outcome is awaited; unless a sync came in meanwhile
        // and already scheduled the next retry.
        const moved = await tx
          .update(connections)
          .set({ captchaNextRetryAt: null, captchaUpstreamErrors: 0, captchaUpstreamError: null, updatedAt: sql`now()` })
          .where(unchanged)
          .returning({ id: connections.id });
        if (moved.length > 0) await requeue(tx, connectionId, new Date(Date.now() + OUTCOME_WAIT_MS));
      });
      log.info({ connectionId, attempt: conn.attempts, status: result.status }, 'captcha re-sync requested');
      return;
    }

    const errors = conn.upstreamErrors + 1;
    const runAt = new Date(Date.now() + upstreamBackoffMs(errors));
    await deps.db.transaction(async (tx) => {
      await addHistoryIfPresent(tx, connectionId, { kind: 'resync_error', attempt: conn.attempts, detail: `${result.detail} (error ${errors} in a row)` });
      const moved = await tx
        .update(connections)
        .set({ captchaUpstreamErrors: errors, captchaUpstreamError: result.reason, captchaNextRetryAt: runAt, updatedAt: sql`now()` })
        .where(unchanged)
        .returning({ id: connections.id });
      if (moved.length > 0) await requeue(tx, connectionId, runAt);
    });
    log.warn({ connectionId, status: result.status, errors, next: runAt.toISOString() }, `captcha re-sync request failed, will retry: ${result.detail}`);
  };
};

/** The connection's next captcha_resync (this running job gives its key up to it). */
const requeue = (tx: Tx, connectionId: number, runAt: Date) =>
  enqueue(tx, 'captcha_resync', { connectionId }, { jobKey: captchaJobKey(connectionId), runAt, maxAttempts: RESYNC_MAX_ATTEMPTS });

const SILENCE = `no sync reported within ${OUTCOME_WAIT_MS / 3600_000} h of the accepted re-sync request`;

/**
 * The follow-up of an accepted request found no sync since: count it as one captcha
 * failure, as a sync reporting one would (trackCaptcha, under the same locks), if the
 * connection is still awaiting that outcome. Returns the decision, or null.
 */
async function countSilence(tx: Tx, connectionId: number, awaiting: ReturnType<typeof and>, log: Logger) {
  const silence: SyncState & { id: number } = { id: connectionId, state: 'websiteUnavailable', error_message: SILENCE, captcha_required: true };
  await holdCaptchaSwitch(tx, silence);
  const [row] = await tx.select({ id: connections.id }).from(connections).where(awaiting).for('update');
  if (!row) return null;
  const [last] = await tx
    .select({ kind: captchaAttempts.kind })
    .from(captchaAttempts)
    .where(eq(captchaAttempts.connectionId, connectionId))
    .orderBy(desc(captchaAttempts.id))
    .limit(1);
  if (last?.kind !== 'resync_requested') return null; // a sync came back (another failure): wait for the next one
  return trackCaptcha(tx, silence, await readSettings(tx), { log });
}
