import { and, eq, sql } from 'drizzle-orm';
import { connections } from '../db/schema/index.js';
import type { JobHandlerFactory } from '../jobs/handler.js';
import { addHistory, addHistoryIfPresent } from './history.js';
import { announce } from './track.js';
import { requestResync } from './upstream.js';

/**
 * captcha_resync — ask the aggregator to re-sync one connection (CONTRACT.md §6).
 *
 * The job is done once the aggregator *accepted* the request: whether the captcha is gone
 * is for the next CONNECTION_SYNCED to say (trackCaptcha counts it, schedules the next
 * retry, gives up or recovers). So an accepted request clears `next_retry_at` (nothing is
 * due any more, an outcome is awaited) and an upstream error is thrown for graphile-worker
 * to retry with its backoff; it is logged in the history and does not count as an attempt.
 * When the request has failed on every try, the connection is given up (and announced)
 * rather than left `retrying` with nothing pending.
 *
 * The HTTP call is made outside any transaction (no row lock held over the network), so
 * the row is re-checked when the result is written: a sync, a config switch or an erasure
 * may have happened meanwhile, and then the result only goes to the history (if the
 * connection still exists).
 */
export const captchaResync: JobHandlerFactory<'captcha_resync'> = (deps) => {
  const log = deps.log.child({ task: 'captcha_resync' });
  let toldNoUpstream = false;

  return async ({ connectionId }, helpers) => {
    const [conn] = await deps.db
      .select({ userId: connections.userId, status: connections.captchaStatus, attempts: connections.captchaAttempts })
      .from(connections)
      .where(eq(connections.id, connectionId));
    // Erased, recovered, given up or switched off since this was queued: nothing to ask.
    if (!conn || conn.status !== 'retrying') return;

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
    // Only if the connection is still where this job found it.
    const unchanged = and(eq(connections.id, connectionId), eq(connections.captchaStatus, 'retrying'), eq(connections.captchaAttempts, conn.attempts));

    if (result.ok) {
      await deps.db.transaction(async (tx) => {
        // Nothing is due any more; unless a sync came in meanwhile and scheduled the next one.
        await tx.update(connections).set({ captchaNextRetryAt: null, updatedAt: sql`now()` }).where(unchanged);
        await addHistoryIfPresent(tx, connectionId, { kind: 'resync_requested', attempt: conn.attempts, detail: `HTTP ${result.status}` });
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
    await deps.db.transaction(async (tx) => {
      const [row] = await tx
        .update(connections)
        .set({ captchaStatus: 'gave_up', captchaNextRetryAt: null, updatedAt: sql`now()` })
        .where(unchanged)
        .returning();
      if (!row) return;
      const ids = await addHistory(tx, connectionId, [
        { kind: 'gave_up', attempt: row.captchaAttempts, detail: `the aggregator refused ${helpers.job.max_attempts} re-sync requests` },
      ]);
      await announce(tx, 'connection.captcha_gave_up', row, row.captchaAttempts, ids[0]);
    });
    log.error({ connectionId, status: result.status, try: tryNo }, `captcha re-sync request failed on every try, connection given up: ${result.detail}`);
  };
};
