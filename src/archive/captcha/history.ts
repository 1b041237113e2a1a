import { sql } from 'drizzle-orm';
import type { Tx } from '../../db/client.js';
import { captchaAttempts } from '../../db/schema/index.js';

/**
 * Kinds of captcha history rows (table captcha_attempts), one row per thing that happened:
 * - failure: a sync reported a captcha-induced failure (`attempt` = the count it made);
 * - other_failure: a sync failed for another reason during a captcha history (kept, not counted);
 * - scheduled: a re-sync job was queued (`detail` = when it is due);
 * - disabled: retries were switched off (`captcha.enabled` = "0") while this one was pending;
 * - resync_requested: the aggregator accepted the re-sync request (the next sync tells the outcome);
 * - resync_error: the request failed (HTTP status or network error); retried, not counted;
 * - resync_not_requested: due, but UPSTREAM_API_URL is not set;
 * - gave_up, recovered: the end of a run of failures (both also send an event).
 */
export type HistoryKind =
  | 'failure'
  | 'other_failure'
  | 'scheduled'
  | 'disabled'
  | 'resync_requested'
  | 'resync_error'
  | 'resync_not_requested'
  | 'gave_up'
  | 'recovered';

export interface HistoryEntry {
  kind: HistoryKind;
  attempt: number | null;
  detail?: string | null;
}

const MAX_DETAIL = 500;
const clip = (s: string | null | undefined) => (s == null ? null : s.length > MAX_DETAIL ? `${s.slice(0, MAX_DETAIL)}…` : s);

/** Append rows to a connection's history; returns their ids (in order). */
export async function addHistory(tx: Tx, connectionId: number, entries: HistoryEntry[]): Promise<number[]> {
  if (entries.length === 0) return [];
  const rows = await tx
    .insert(captchaAttempts)
    .values(entries.map((e) => ({ connectionId, kind: e.kind, attempt: e.attempt, detail: clip(e.detail) })))
    .returning({ id: captchaAttempts.id });
  return rows.map((r) => r.id);
}

/**
 * Append one row if the connection still exists (the worker writes outside the sync's
 * transaction: the connection may have been erased meanwhile, and then there is nothing
 * to record it on).
 */
export async function addHistoryIfPresent(tx: Tx, connectionId: number, e: HistoryEntry): Promise<void> {
  await tx.execute(sql`
    insert into captcha_attempts (connection_id, kind, attempt, detail)
    select id, ${e.kind}, ${e.attempt}::int, ${clip(e.detail)} from connections where id = ${connectionId}`);
}
