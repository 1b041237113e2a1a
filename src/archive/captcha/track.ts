import { and, eq, gte, sql, type SQL } from 'drizzle-orm';
import { presentConnection } from '../../present/presenters.js';
import type { Tx } from '../../db/client.js';
import { captchaAttempts, connections } from '../../db/schema/index.js';
import { recordEvents } from '../../events/record.js';
import { enqueue, enqueueMany } from '../../jobs/enqueue.js';
import { captchaJobKey, removeJobs } from '../../jobs/keys.js';
import type { Logger } from '../../logger.js';
import { readSettings, type Settings } from '../../settings.js';
import { addHistory, type HistoryKind } from './history.js';
import { captchaStepForSync, classifySync, isCaptchaInduced, type CaptchaStatus, type CaptchaTracking, type SyncState } from './policy.js';

/**
 * Captcha tracking in the caller's transaction: the CONNECTION_SYNCED
 * transaction (trackCaptcha) and the POST /config one (applyCaptchaSettings). Rows, history,
 * re-sync job and events commit together with the sync or the config change, or not at all.
 */

/**
 * Tries of one captcha_resync job on our own errors (the database away). The aggregator's
 * errors are not thrown: the job records them and queues its next try itself, with its own
 * backoff and for as long as it takes (captcha/tasks.ts).
 */
export const RESYNC_MAX_ATTEMPTS = 10;

/**
 * A sync reads `captcha.enabled` and `captcha.max_retries` and then writes its decision;
 * the config change turning it on moves every `disabled` connection to `retrying`. Without
 * a lock, a sync that read "0" just before the change committed would write `disabled`
 * just after it, and that connection would never be retried (likewise a retry scheduled
 * under a limit just lowered). So captcha syncs hold this lock shared and a change of
 * either key holds it exclusive. Syncs take it *before* they lock their connection row: the switch
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
  /** The connection's tracking, when the caller read it under the row lock already (archive/diff.ts does). */
  tracking?: CaptchaTracking;
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
  const [row] = opts.tracking
    ? [opts.tracking]
    : await tx
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
      .set({
        captchaStatus: set.status,
        captchaAttempts: set.attempts,
        captchaNextRetryAt: set.nextRetryAt,
        // The upstream trouble of a run ends with it.
        ...(set.status === null ? { captchaUpstreamErrors: 0, captchaUpstreamError: null } : {}),
        updatedAt: sql`now()`,
      })
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
  await recordEvents(tx, [captchaEvent(type, row, attempts, historyId)]);
}

function captchaEvent(type: 'connection.captcha_gave_up' | 'connection.recovered', row: typeof connections.$inferSelect, attempts: number, historyId: number) {
  return { type, dedupeKey: `${type}:${row.id}:${historyId}`, userId: row.userId, connectionId: row.id, data: { connection: presentConnection(row), attempts } };
}

/**
 * POST /config changed `captcha.enabled` or `captcha.max_retries` (call in its
 * transaction, after writing them): the connections move to where the decision table puts
 * them under the new settings. Set-based, whatever the number of connections.
 * - enabled "0": pending retries stop and their connections show `disabled`;
 * - enabled "1": every `disabled` and `gave_up` connection is retried at once (an operator
 *   who switches it on again means "try again"), its count of attempts kept;
 * - max_retries (retries on): a `gave_up` connection whose attempts are now below it is
 *   retried at once; a `retrying` one whose attempts reach it is given up now, its pending
 *   re-sync removed and `connection.captcha_gave_up` sent, as its last failure would have
 *   done under that limit. (Both keys at once: the switch wins, nothing is given up.)
 */
export async function applyCaptchaSettings(tx: Tx, update: Partial<Settings>): Promise<void> {
  const enabled = update['captcha.enabled'];
  const maxRetries = update['captcha.max_retries'];
  if (enabled === undefined && maxRetries === undefined) return;
  await tx.execute(sql`select pg_advisory_xact_lock(${SWITCH_LOCK})`);
  if (enabled === '0') {
    const ids = await moveConnections(tx, sql`captcha_status = 'retrying'`, 'disabled', 'disabled', 'captcha.enabled turned to "0": pending retry cancelled');
    await removeJobs(tx, ids.map(captchaJobKey));
    return;
  }
  const settings = await readSettings(tx);
  if (settings['captcha.enabled'] !== '1') return; // a new limit while retries are off: nothing is retried, nothing given up
  const max = Number(settings['captcha.max_retries']);
  const retried =
    enabled === '1'
      ? await moveConnections(tx, sql`captcha_status in ('disabled', 'gave_up')`, 'retrying', 'scheduled', 'captcha.enabled turned to "1": retry at once')
      : await moveConnections(tx, sql`captcha_status = 'gave_up' and captcha_attempts < ${max}`, 'retrying', 'scheduled', `captcha.max_retries raised to ${max}: retry at once`);
  await enqueueMany(
    tx,
    'captcha_resync',
    retried.map((id) => ({ payload: { connectionId: id }, jobKey: captchaJobKey(id) })),
    { maxAttempts: RESYNC_MAX_ATTEMPTS },
  );
  if (enabled === undefined) await giveUpAtLimit(tx, max);
}

/** Every `retrying` connection with `max` attempts or more gives up now (see applyCaptchaSettings). */
async function giveUpAtLimit(tx: Tx, max: number): Promise<void> {
  const rows = await tx
    .update(connections)
    .set({ captchaStatus: 'gave_up', captchaNextRetryAt: null, updatedAt: sql`now()` })
    .where(and(eq(connections.captchaStatus, 'retrying'), gte(connections.captchaAttempts, max)))
    .returning();
  if (rows.length === 0) return;
  await removeJobs(tx, rows.map((r) => captchaJobKey(r.id)));
  const history = await tx
    .insert(captchaAttempts)
    .values(rows.map((r) => ({ connectionId: r.id, kind: 'gave_up', attempt: r.captchaAttempts, detail: `captcha.max_retries lowered to ${max}` })))
    .returning({ id: captchaAttempts.id, connectionId: captchaAttempts.connectionId });
  const historyOf = new Map(history.map((h) => [h.connectionId, h.id]));
  await recordEvents(tx, rows.map((r) => captchaEvent('connection.captcha_gave_up', r, r.captchaAttempts, historyOf.get(r.id)!)));
}

/**
 * Every connection that `where` selects goes to `to` (due at once when retrying, nothing
 * due when disabled), with a history row saying why; returns their ids.
 */
async function moveConnections(tx: Tx, where: SQL, to: CaptchaStatus, kind: HistoryKind, detail: string): Promise<number[]> {
  const rows = await tx.execute<{ id: number }>(sql`
    with moved as (
      update connections
      set captcha_status = ${to}, captcha_next_retry_at = case when ${to} = 'retrying' then now() end, updated_at = now()
      where ${where}
      returning id, captcha_attempts
    ),
    noted as (
      insert into captcha_attempts (connection_id, kind, attempt, detail)
      select id, ${kind}, captcha_attempts, ${detail} from moved
    )
    select id::float8 as id from moved`);
  return rows.map((r) => Number(r.id));
}
