import { sql, type SQL } from 'drizzle-orm';
import type { Db } from '../db/client.js';

/** What a document list is filtered by; the totals count every document that matches. */
export interface TotalsFilter {
  userId: number;
  subscriptionId?: number;
  type?: string;
  /** Calendar dates, inclusive. */
  minDate?: string;
  maxDate?: string;
  duplicates: boolean;
  hideDeletedSubscriptions: boolean;
}

export interface Totals {
  total: number;
  first: string | null;
  last: string | null;
}

/**
 * `total`, `first_date` and `last_date` of a document list, exact, without counting its
 * documents: the months that lie wholly inside the date filter are read from their
 * buckets in `document_months` (kept by triggers, see the schema), and only the documents
 * of the partly covered months at either end of the filter are counted — at most two
 * months' worth, on the (user, date) index. Without a date filter every bucket counts,
 * undated documents' included. The cost follows the number of buckets (subscriptions ×
 * types × months), not of documents.
 */
export async function documentTotals(db: Db, f: TotalsFilter): Promise<Totals> {
  const { bucket, doc, edges } = conditions(f);
  const [row] = await db.execute<{ total: number; first: string | null; last: string | null }>(sql`
    with parts as (
      select sum(m.n)::bigint as n, min(m.first) as first, max(m.last) as last
      from document_months m where ${sql.join(bucket, sql` and `)}
      union all
      select count(*), min(d.date), max(d.date)
      from documents d where ${sql.join([...doc, edges], sql` and `)}
    )
    select coalesce(sum(n), 0)::int as total, min(first)::text as first, max(last)::text as last from parts`);
  return { total: row.total, first: row.first, last: row.last };
}

/** From this offset on, a page skips the newest whole months by their counts (below it, walking is cheap). */
const DEEP_OFFSET = 1000;

/**
 * Where a deep page (`offset` past a few thousand documents) starts: the newest whole
 * months that lie entirely before it are counted from their buckets, and skipped with an
 * index range (`date < before`) instead of being walked one document at a time by OFFSET
 * — without a VACUUM each of those steps reads the table. The page is the same: the
 * documents dated `before` or later are exactly the `skipped` newest matches. Null when
 * there is nothing worth skipping, when the newest matches lie in a month the filter
 * covers only in part (their count is not in a bucket), or when the page reaches the
 * undated documents.
 */
export async function wholeMonthsBefore(
  db: Db,
  f: TotalsFilter,
  page: { offset: number; limit: number },
  deepFrom = DEEP_OFFSET,
): Promise<{ before: string; skipped: number } | null> {
  const { offset, limit } = page;
  if (offset < deepFrom) return null;
  if (f.maxDate !== undefined && monthAfterLastUpTo(f.maxDate) <= f.maxDate) return null;
  const { bucket } = conditions(f);
  const months = await db.execute<{ month: string; n: number }>(sql`
    select m.month::text as month, sum(m.n)::int as n from document_months m
    where ${sql.join(bucket, sql` and `)} and m.month > '-infinity'
    group by m.month order by m.month desc`);
  // Undated documents come last, and `date < before` leaves them out: only a page that ends
  // among the dated ones may skip (with a date filter there are no undated matches).
  const dated = months.reduce((sum, m) => sum + m.n, 0);
  if (f.minDate === undefined && f.maxDate === undefined && offset + limit > dated) return null;
  let skipped = 0;
  for (const { month, n } of months) {
    if (skipped + n > offset) return skipped === 0 ? null : { before: nextMonth(month), skipped };
    skipped += n;
  }
  return null;
}

/**
 * The filter as conditions on the buckets (`m`) of the whole months it covers, and on the
 * documents (`d`) of the days outside them (`edges`, index ranges: `false` without a date filter).
 */
function conditions(f: TotalsFilter) {
  const bucket: SQL[] = [sql`m.user_id = ${f.userId}`];
  const doc: SQL[] = [sql`d.user_id = ${f.userId}`];
  if (f.subscriptionId !== undefined) {
    bucket.push(sql`m.subscription_id = ${f.subscriptionId}`);
    doc.push(sql`d.subscription_id = ${f.subscriptionId}`);
  }
  if (f.type !== undefined) {
    bucket.push(sql`m.type = ${f.type}`);
    doc.push(sql`d.type = ${f.type}`);
  }
  if (f.duplicates) {
    bucket.push(sql`m.duplicate`);
    doc.push(sql`d.duplicate_reason is not null`);
  }
  if (f.hideDeletedSubscriptions) {
    const live = (col: SQL) => sql`not exists (select 1 from subscriptions s where s.id = ${col} and s.deleted is not null)`;
    bucket.push(live(sql`m.subscription_id`));
    doc.push(live(sql`d.subscription_id`));
  }

  // Whole months inside [minDate, maxDate] come from their buckets: from the first month
  // that starts on or after minDate, up to the month after the last one that ends on or
  // before maxDate. The days outside them — at most a month at either end — are counted
  // from the documents, as index ranges.
  const dated = f.minDate !== undefined || f.maxDate !== undefined;
  const fullFrom = f.minDate === undefined ? undefined : firstMonthFrom(f.minDate);
  const fullUntil = f.maxDate === undefined ? undefined : monthAfterLastUpTo(f.maxDate);
  const ranges: SQL[] = [];
  if (fullFrom && fullUntil && fullFrom >= fullUntil) {
    // No whole month in between: every matching document is counted.
    bucket.push(sql`false`);
    ranges.push(sql`d.date >= ${f.minDate}::date and d.date <= ${f.maxDate}::date`);
  } else if (dated) {
    bucket.push(sql`m.month > '-infinity'`);
    if (fullFrom) {
      bucket.push(sql`m.month >= ${fullFrom}::date`);
      ranges.push(sql`d.date >= ${f.minDate}::date and d.date < ${fullFrom}::date`);
    }
    if (fullUntil) {
      bucket.push(sql`m.month < ${fullUntil}::date`);
      ranges.push(sql`d.date >= ${fullUntil}::date and d.date <= ${f.maxDate}::date`);
    }
  }
  const edges = ranges.length ? sql`(${sql.join(ranges.map((r) => sql`(${r})`), sql` or `)})` : sql`false`;

  return { bucket, doc, edges, partialMonths: ranges.length > 0 };
}

/** The first day of the first month that starts on or after `day` (YYYY-MM-DD). */
function firstMonthFrom(day: string): string {
  const [y, m, d] = day.split('-').map(Number);
  return d === 1 ? monthStart(y, m) : monthStart(y, m + 1);
}

/** The first day of the month after the last month that ends on or before `day`. */
function monthAfterLastUpTo(day: string): string {
  const [y, m, d] = day.split('-').map(Number);
  return d === daysInMonth(y, m) ? monthStart(y, m + 1) : monthStart(y, m);
}

function nextMonth(monthStartDay: string): string {
  const [y, m] = monthStartDay.split('-').map(Number);
  return monthStart(y, m + 1);
}

/** `YYYY-MM-01` of month `m` (1-based, 13 being January of the next year). */
function monthStart(y: number, m: number): string {
  const [year, month] = m > 12 ? [y + 1, m - 12] : [y, m];
  return `${String(year).padStart(4, '0')}-${String(month).padStart(2, '0')}-01`;
}

function daysInMonth(y: number, m: number): number {
  const leap = (y % 4 === 0 && y % 100 !== 0) || y % 400 === 0;
  return [31, leap ? 29 : 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31][m - 1];
}
