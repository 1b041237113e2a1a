import { and, desc, eq, sql } from 'drizzle-orm';
import type { Tx } from '../db/client.js';
import { captchaAttempts, connections } from '../db/schema/index.js';
import { enqueue } from '../jobs/enqueue.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { captchaJobKey } from '../jobs/keys.js';
import { addHistory, addHistoryIfPresent } from '../archive/captcha/history.js';
import { BACKOFF_CAP_MS } from '../archive/captcha/policy.js';
import { announce, RESYNC_MAX_ATTEMPTS } from '../archive/captcha/track.js';
import { requestResync } from './upstream.js';

/**
 * captcha_resync — ask the aggregator to re-sync one connection.
 *
 * The job is done once the aggregator *accepted* the request: whether the captcha is gone
 * is for the next CONNECTION_SYNCED to say (trackCaptcha counts it, schedules the next
 * retry, gives up or recovers). So an accepted request clears `next_retry_at` (nothing is
 * due any more, an outcome is awaited) and an upstream error is thrown for graphile-worker
 * to retry with its backoff; it is logged in the history and does not count as an attempt.
 * When the request has failed on every try, the connection is given up (and announced)
 * rather than left `retrying` with nothing pending.
 *
 * An accepted request whose sync never reports back would leave the connection `retrying`
 * for ever, so acceptance queues a follow-up (same job key) after OUTCOME_WAIT_MS. A sync
 * that comes back replaces it (another captcha failure: the next retry) or cancels it
 * (success); if it runs and nothing came back since the request, the connection is given
 * up and announced. The job tells the two runs apart by the row: `next_retry_at` is set
 * while a retry is due and cleared once a request was accepted.
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

  return async ({ connectionId }, helpers) => {
    const [conn] = await deps.db
      .select({
        userId: connections.userId,
        status: connections.captchaStatus,
        attempts: connections.captchaAttempts,
        nextRetryAt: connections.captchaNextRetryAt,
      })
      .from(connections)
      .where(eq(connections.id, connectionId));
    // Erased, recovered, given up or switched off since this was queued: nothing to ask.
    if (!conn || conn.status !== 'retrying') return;
    // Only if the connection is still where this job found it.
    const unchanged = and(eq(connections.id, connectionId), eq(connections.captchaStatus, 'retrying'), eq(connections.captchaAttempts, conn.attempts));

    if (conn.nextRetryAt === null) {
      // The follow-up of an accepted request. Has any sync come back since?
      const [last] = await deps.db
        .select({ kind: captchaAttempts.kind })
        .from(captchaAttempts)
        .where(eq(captchaAttempts.connectionId, connectionId))
        .orderBy(desc(captchaAttempts.id))
        .limit(1);
      if (last?.kind !== 'resync_requested') return; // yes, another failure: wait for the next sync
      const reason = `no sync reported within ${OUTCOME_WAIT_MS / 3600_000} h of the accepted re-sync request`;
      if (await deps.db.transaction((tx) => giveUp(tx, connectionId, unchanged, reason))) {
        log.error({ connectionId, attempts: conn.attempts }, `captcha retries given up: ${reason}`);
      }
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
        const moved = await tx.update(connections).set({ captchaNextRetryAt: null, updatedAt: sql`now()` }).where(unchanged).returning({ id: connections.id });
        if (moved.length > 0) {
          const runAt = new Date(Date.now() + OUTCOME_WAIT_MS);
          await enqueue(tx, 'captcha_resync', { connectionId }, { jobKey: captchaJobKey(connectionId), runAt, maxAttempts: RESYNC_MAX_ATTEMPTS });
        }
      });
      log.info({ connectionId, attempt: conn.attempts, status: result.status }, 'captcha re-sync requested');
      return;
    }

    const tryNo = `${helpers.job.attempts}/${helpers.job.max_attempts}`;
    const lastTry = helpers.job.attempts >= helpers.job.max_attempts;
    await addHistoryIfPresent(deps.db, connectionId, { kind: 'resync_error', attempt: conn.attempts, detail: `${result.detail} (try ${tryNo})` });
    if (!lastTry) {
      log.warn({ connectionId, status: result.status, try: tryNo }, `captcha re-sync request failed, will retry: ${result.detail}`);
      throw new Error(`captcha re-sync request failed: ${result.detail}`);
    }
    // Every try failed: escalate like a captcha that will not go away.
    const reason = `the aggregator refused ${helpers.job.max_attempts} re-sync requests`;
    if (await deps.db.transaction((tx) => giveUp(tx, connectionId, unchanged, reason))) {
      log.error({ connectionId, status: result.status, try: tryNo }, `captcha retries given up: ${reason}: ${result.detail}`);
    }
  };
};

/** gave_up + history + `connection.captcha_gave_up`, if the row is still as the job found it. */
async function giveUp(tx: Tx, connectionId: number, unchanged: ReturnType<typeof and>, reason: string): Promise<boolean> {
  const [row] = await tx
    .update(connections)
    .set({ captchaStatus: 'gave_up', captchaNextRetryAt: null, updatedAt: sql`now()` })
    .where(unchanged)
    .returning();
  if (!row) return false;
  const [historyId] = await addHistory(tx, connectionId, [{ kind: 'gave_up', attempt: row.captchaAttempts, detail: reason }]);
  await announce(tx, 'connection.captcha_gave_up', row, row.captchaAttempts, historyId);
  return true;
}
