import { eq, sql } from 'drizzle-orm';
import { presentConnection } from '../../present/presenters.js';
import type { Tx } from '../../db/client.js';
import { connections } from '../../db/schema/index.js';
import { recordEvents } from '../../events/record.js';
import { enqueue, enqueueMany } from '../../jobs/enqueue.js';
import { captchaJobKey, removeJobs } from '../../jobs/keys.js';
import type { Logger } from '../../logger.js';
import type { Settings } from '../../settings.js';
import { addHistory, type HistoryKind } from './history.js';
import { captchaStepForSync, classifySync, isCaptchaInduced, type CaptchaStatus, type SyncState } from './policy.js';

/**
 * Captcha tracking in the caller's transaction: the CONNECTION_SYNCED
 * transaction (trackCaptcha) and the POST /config one (applyCaptchaSwitch). Rows, history,
 * re-sync job and events commit together with the sync or the config change, or not at all.
 */

/**
 * How many times one re-sync request is tried against the aggregator before the
 * connection is given up. graphile-worker waits e^n seconds after failed try n
 * (`exp(least(attempts, 10))`): the 9 waits before the 10th try add up to about 3.6 h
 * (12,817 s; the last one alone is 2.25 h).
 */
export const RESYNC_MAX_ATTEMPTS = 10;

/**
 * A sync reads `captcha.enabled` and may then write `disabled`; the config change turning
 * it on moves every `disabled` connection to `retrying`. Without a lock, a sync that read
 * "0" just before the change committed would write `disabled` just after it, and that
 * connection would never be retried. So captcha syncs hold this lock shared and the switch
 * holds it exclusive. Syncs take it *before* they lock their connection row: the switch
 * updates connection rows while holding it, and the other order could deadlock.
 */
const SWITCH_LOCK = sql`${0x646f6372}::int, ${0x63617074}::int`; // "docr", "capt"

/** Call at the start of a CONNECTION_SYNCED transaction, before the connection row is locked. */
export async function holdCaptchaSwitch(tx: Tx, conn: SyncState): Promise<void> {
  if (isCaptchaInduced(conn)) await tx.execute(sql`select pg_advisory_xact_lock_shared(${SWITCH_LOCK})`);
}

export interface TrackOptions {
  log?: Logger;
  random?: () => number;
  now?: () => Date;
}

/**
 * Apply one (non-stale) sync to the connection's captcha tracking; call after
 * applyConnectionSync, which has locked the connection row. `settings` must have been read
 * after holdCaptchaSwitch.
 */
export async function trackCaptcha(
  tx: Tx,
  conn: SyncState & { id: number },
  settings: Settings,
  opts: TrackOptions = {},
) {
  const [row] = await tx
    .select({ status: connections.captchaStatus, attempts: connections.captchaAttempts })
    .from(connections)
    .where(eq(connections.id, conn.id));
  if (!row) return { kind: 'none' as const };
  const previous = row.status as CaptchaStatus | null;
  const decision = captchaStepForSync(
    { status: previous, attempts: row.attempts },
    classifySync(conn),
    { enabled: settings['captcha.enabled'] === '1', maxRetries: Number(settings['captcha.max_retries']) },
    opts.random,
  );
  const failure = { kind: 'failure' as const, detail: conn.error_message ?? conn.state };
  const update = (set: { status: CaptchaStatus | null; attempts: number; nextRetryAt: Date | null }) =>
    tx
      .update(connections)
      .set({ captchaStatus: set.status, captchaAttempts: set.attempts, captchaNextRetryAt: set.nextRetryAt, updatedAt: sql`now()` })
      .where(eq(connections.id, conn.id))
      .returning();
  const cancelJob = () => removeJobs(tx, [captchaJobKey(conn.id)]);

  switch (decision.kind) {
    case 'none':
      break;
    case 'note':
      // Another failure in between says nothing about the captcha: the history goes on.
      await addHistory(tx, conn.id, [{ kind: 'other_failure', attempt: row.attempts, detail: conn.state }]);
      break;
    case 'disabled':
      await update({ status: 'disabled', attempts: decision.attempts, nextRetryAt: null });
      if (previous === 'retrying') await cancelJob();
      await addHistory(tx, conn.id, [
        { ...failure, attempt: decision.attempts },
        ...(previous === 'disabled' ? [] : [{ kind: 'disabled' as const, attempt: decision.attempts, detail: 'captcha.enabled is "0": not retried' }]),
      ]);
      break;
    case 'retry': {
      const runAt = new Date((opts.now?.() ?? new Date()).getTime() + decision.delayMs);
      await update({ status: 'retrying', attempts: decision.attempts, nextRetryAt: runAt });
      // One job per connection: a pending one is replaced (new due time), never doubled.
      await enqueue(tx, 'captcha_resync', { connectionId: conn.id }, { jobKey: captchaJobKey(conn.id), runAt, maxAttempts: RESYNC_MAX_ATTEMPTS });
      await addHistory(tx, conn.id, [{ ...failure, attempt: decision.attempts }, { kind: 'scheduled', attempt: decision.attempts, detail: runAt.toISOString() }]);
      break;
    }
    case 'gave_up': {
      const [updated] = await update({ status: 'gave_up', attempts: decision.attempts, nextRetryAt: null });
      if (previous === 'retrying') await cancelJob();
      if (!decision.announce) {
        await addHistory(tx, conn.id, [{ ...failure, attempt: decision.attempts }]);
        break;
      }
      const ids = await addHistory(tx, conn.id, [
        { ...failure, attempt: decision.attempts },
        { kind: 'gave_up', attempt: decision.attempts, detail: `captcha.max_retries (${settings['captcha.max_retries']}) reached` },
      ]);
      await announce(tx, 'connection.captcha_gave_up', updated, decision.attempts, Math.max(...ids));
      opts.log?.warn({ connectionId: conn.id, userId: updated.userId, attempts: decision.attempts }, 'captcha retries given up: the connection needs its user');
      break;
    }
    case 'recovered': {
      const [updated] = await update({ status: null, attempts: 0, nextRetryAt: null });
      if (previous === 'retrying') await cancelJob();
      const ids = await addHistory(tx, conn.id, [{ kind: 'recovered', attempt: decision.attempts }]);
      await announce(tx, 'connection.recovered', updated, decision.attempts, ids[0]);
      opts.log?.info({ connectionId: conn.id, attempts: decision.attempts }, 'connection recovered from captcha failures');
      break;
    }
  }
  return decision;
}

/**
 * `data: {connection, attempts}`. The key names the history row that
 * ended the run, so each run of failures is announced once, however often it is replayed.
 */
export async function announce(
  tx: Tx,
  type: 'connection.captcha_gave_up' | 'connection.recovered',
  row: typeof connections.$inferSelect,
  attempts: number,
  historyId: number,
): Promise<void> {
  await recordEvents(tx, [
    { type, dedupeKey: `${type}:${row.id}:${historyId}`, userId: row.userId, connectionId: row.id, data: { connection: presentConnection(row), attempts } },
  ]);
}

/**
 * POST /config changed `captcha.enabled` (call in its transaction, after writing it).
 * "1": every `disabled` connection is retried at once. "0": pending retries stop and their
 * connections show `disabled`. Set-based, whatever the number of connections.
 */
export async function applyCaptchaSwitch(tx: Tx, update: Partial<Settings>): Promise<void> {
  const enabled = update['captcha.enabled'];
  if (enabled === undefined) return;
  await tx.execute(sql`select pg_advisory_xact_lock(${SWITCH_LOCK})`);
  if (enabled === '1') {
    const ids = await moveConnections(tx, 'disabled', 'retrying', 'scheduled', 'captcha.enabled turned to "1": retry at once');
    await enqueueMany(
      tx,
      'captcha_resync',
      ids.map((id) => ({ payload: { connectionId: id }, jobKey: captchaJobKey(id) })),
      { maxAttempts: RESYNC_MAX_ATTEMPTS },
    );
  } else {
    const ids = await moveConnections(tx, 'retrying', 'disabled', 'disabled', 'captcha.enabled turned to "0": pending retry cancelled');
    await removeJobs(tx, ids.map(captchaJobKey));
  }
}

/**
 * Every connection in captcha status `from` goes to `to` (due at once when retrying, nothing
 * due when disabled), with a history row saying why; returns their ids.
 */
async function moveConnections(tx: Tx, from: CaptchaStatus, to: CaptchaStatus, kind: HistoryKind, detail: string): Promise<number[]> {
  const rows = await tx.execute<{ id: number }>(sql`
    with moved as (
      update connections
      set captcha_status = ${to}, captcha_next_retry_at = case when ${to} = 'retrying' then now() end, updated_at = now()
      where captcha_status = ${from}
      returning id, captcha_attempts
    ),
    noted as (
      insert into captcha_attempts (connection_id, kind, attempt, detail)
      select id, ${kind}, captcha_attempts, ${detail} from moved
    )
    select id::float8 as id from moved`);
  return rows.map((r) => Number(r.id));
}
