import { sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';
import type { JobHandlerFactory } from '../jobs/handler.js';

/**
 * prune_retention (cron, hourly): the tables that grow with traffic lose what is older than
 * their retention period (README: Configuration), in batches of PRUNE_BATCH rows, one
 * short statement each, so no lock is held for long and a crash loses nothing: the next
 * run goes on from where this one stopped.
 *
 * Never deleted: a message still waiting to be delivered (with its attempts), an event that
 * still has a message, and anything younger than its period — so a replay `?since=` within
 * RETAIN_DELIVERIES_DAYS finds every failed message it could resend. Each statement states
 * its conditions on the rows it deletes, not only in the subquery that picks them: a row a
 * concurrent transaction changed (a replay making a failed message pending) is checked
 * again as it now is, and kept.
 */
export const PRUNE_BATCH = 5000;
/** A run stops after this long; the next hour's run takes up the rest. */
const RUN_BUDGET_MS = 10 * 60_000;

export interface RetentionDays {
  /** Settled messages (with their delivery attempts, by cascade) and the mail log. */
  deliveries: number;
  /** Events without a message left, and the captcha history. */
  events: number;
  /** Inbound idempotency keys (inbound_deliveries). */
  inboundKeys: number;
}

type Step = { table: string; days: keyof RetentionDays; batch: (cutoff: string, limit: number) => SQL };

/**
 * One batch of `table`'s rows that `expired` holds for (a condition on the alias it is
 * given): picked by `key` in a subquery, and checked again on the rows deleted.
 */
const expiredRows =
  (table: string, key: string, expired: (alias: SQL, cutoff: string) => SQL) =>
  (cutoff: string, limit: number) => {
    const [t, x] = [sql.raw('t'), sql.raw('x')];
    return sql`
      delete from ${sql.identifier(table)} t
      where t.${sql.identifier(key)} in (select x.${sql.identifier(key)} from ${sql.identifier(table)} x where ${expired(x, cutoff)} limit ${limit})
        and ${expired(t, cutoff)}`;
  };

const before = (alias: SQL, column: string, cutoff: string) => sql`${alias}.${sql.identifier(column)} < ${cutoff}::timestamptz`;

// Order matters: messages go before the events they reference.
const steps: Step[] = [
  {
    table: 'messages',
    days: 'deliveries',
    batch: expiredRows('messages', 'id', (m, cutoff) => sql`${before(m, 'created_at', cutoff)} and ${m}.status in ('succeeded', 'failed')`),
  },
  {
    table: 'email_deliveries',
    days: 'deliveries',
    batch: expiredRows('email_deliveries', 'document_id', (d, cutoff) => sql`${before(d, 'updated_at', cutoff)} and ${d}.status in ('sent', 'failed')`),
  },
  {
    table: 'events',
    days: 'events',
    batch: expiredRows(
      'events',
      'id',
      (e, cutoff) => sql`${before(e, 'created_at', cutoff)} and not exists (select 1 from messages m where m.event_id = ${e}.id)`,
    ),
  },
  { table: 'captcha_attempts', days: 'events', batch: expiredRows('captcha_attempts', 'id', (c, cutoff) => before(c, 'at', cutoff)) },
  { table: 'inbound_deliveries', days: 'inboundKeys', batch: expiredRows('inbound_deliveries', 'key', (i, cutoff) => before(i, 'received_at', cutoff)) },
];

/** Delete what is past its period; returns the rows deleted per table. */
export async function pruneRetention(db: Db, days: RetentionDays, opts: { now?: Date; batch?: number } = {}): Promise<Record<string, number>> {
  const now = opts.now ?? new Date();
  const limit = opts.batch ?? PRUNE_BATCH;
  const started = Date.now();
  const deleted: Record<string, number> = {};
  for (const step of steps) {
    const cutoff = new Date(now.getTime() - days[step.days] * 86_400_000).toISOString();
    deleted[step.table] = 0;
    for (;;) {
      const [{ n }] = await db.execute<{ n: number }>(sql`with gone as (${step.batch(cutoff, limit)} returning 1) select count(*)::int as n from gone`);
      deleted[step.table] += n;
      if (n < limit) break;
      if (Date.now() - started > RUN_BUDGET_MS) return deleted;
    }
  }
  return deleted;
}

export const pruneRetentionTask: JobHandlerFactory<'prune_retention'> = (deps) => async () => {
  const deleted = await pruneRetention(deps.db, deps.config.retentionDays);
  if (Object.values(deleted).some((n) => n > 0)) deps.log.info({ deleted }, 'retention: old rows pruned');
};
