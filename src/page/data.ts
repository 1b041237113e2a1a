import { sql } from 'drizzle-orm';
import type { Db } from '../db/client.js';

/** What the operator page shows that no JSON route lists: read straight from the tables. */

export interface Flow {
  webhooks: number;
  documents: number;
  filesReady: number;
  filesFailed: number;
  deliveriesOk: number;
  deliveriesFailed: number;
  mailsSent: number;
  mailsFailed: number;
}
export interface HourPoint extends Flow {
  hour: Date;
}

/** The last 24 hours, hour by hour (the oldest first); the totals are their sum. */
export async function flowByHour(db: Db): Promise<HourPoint[]> {
  const rows = await db.execute<Record<string, string | number | Date>>(sql`
    with hours as (
      select generate_series(date_trunc('hour', now()) - interval '23 hours', date_trunc('hour', now()), interval '1 hour') as hour
    ),
    since as (select date_trunc('hour', now()) - interval '23 hours' as t),
    webhooks as (select date_trunc('hour', received_at) as hour, count(*) as n from inbound_deliveries, since where received_at >= since.t group by 1),
    docs as (select date_trunc('hour', rdate) as hour, count(*) as n from documents, since where rdate >= since.t group by 1),
    files as (
      select date_trunc('hour', updated_at) as hour, count(*) filter (where status = 'ready') as ready, count(*) filter (where status = 'failed') as failed
      from document_files, since where updated_at >= since.t group by 1
    ),
    deliveries as (
      select date_trunc('hour', at) as hour,
        count(*) filter (where status_code between 200 and 299) as ok,
        count(*) filter (where status_code is null or status_code not between 200 and 299) as failed
      from delivery_attempts, since where at >= since.t group by 1
    ),
    mails as (
      select date_trunc('hour', updated_at) as hour, count(*) filter (where status = 'sent') as sent, count(*) filter (where status = 'failed') as failed
      from email_deliveries, since where updated_at >= since.t group by 1
    )
    select hours.hour,
      coalesce(webhooks.n, 0)::int as webhooks, coalesce(docs.n, 0)::int as documents,
      coalesce(files.ready, 0)::int as files_ready, coalesce(files.failed, 0)::int as files_failed,
      coalesce(deliveries.ok, 0)::int as deliveries_ok, coalesce(deliveries.failed, 0)::int as deliveries_failed,
      coalesce(mails.sent, 0)::int as mails_sent, coalesce(mails.failed, 0)::int as mails_failed
    from hours
    left join webhooks using (hour) left join docs using (hour) left join files using (hour)
    left join deliveries using (hour) left join mails using (hour)
    order by hours.hour`);
  return rows.map((r) => ({
    hour: new Date(r.hour as string),
    webhooks: Number(r.webhooks),
    documents: Number(r.documents),
    filesReady: Number(r.files_ready),
    filesFailed: Number(r.files_failed),
    deliveriesOk: Number(r.deliveries_ok),
    deliveriesFailed: Number(r.deliveries_failed),
    mailsSent: Number(r.mails_sent),
    mailsFailed: Number(r.mails_failed),
  }));
}

export function totals(points: HourPoint[]): Flow {
  const t: Flow = { webhooks: 0, documents: 0, filesReady: 0, filesFailed: 0, deliveriesOk: 0, deliveriesFailed: 0, mailsSent: 0, mailsFailed: 0 };
  for (const p of points) for (const k of Object.keys(t) as (keyof Flow)[]) t[k] += p[k];
  return t;
}

export interface ConnectionsView {
  byState: { state: string; n: number }[];
  retrying: { id: number; userId: number; attempts: number; nextRetryAt: Date | null }[];
  gaveUp: { id: number; userId: number; attempts: number; since: Date }[];
}

export async function connectionsView(db: Db, limit = 20): Promise<ConnectionsView> {
  const [byState, retrying, gaveUp] = await Promise.all([
    db.execute<{ state: string; n: number }>(sql`
      select coalesce(state, 'ok') as state, count(*)::int as n from connections group by 1 order by 2 desc, 1`),
    db.execute<{ id: number; user_id: number; attempts: number; next: Date | null }>(sql`
      select id::float8 as id, user_id::float8 as user_id, captcha_attempts as attempts, captcha_next_retry_at as next
      from connections where captcha_status = 'retrying' order by captcha_next_retry_at nulls last, id limit ${limit}`),
    db.execute<{ id: number; user_id: number; attempts: number; since: Date }>(sql`
      select id::float8 as id, user_id::float8 as user_id, captcha_attempts as attempts, updated_at as since
      from connections where captcha_status = 'gave_up' order by updated_at desc, id limit ${limit}`),
  ]);
  return {
    byState: byState.map((r) => ({ state: r.state, n: Number(r.n) })),
    retrying: retrying.map((r) => ({ id: Number(r.id), userId: Number(r.user_id), attempts: r.attempts, nextRetryAt: r.next && new Date(r.next) })),
    gaveUp: gaveUp.map((r) => ({ id: Number(r.id), userId: Number(r.user_id), attempts: r.attempts, since: new Date(r.since) })),
  };
}

export interface FailedFile {
  documentId: number;
  userId: number;
  name: string | null;
  error: string | null;
  at: Date;
}

export async function failedFiles(db: Db, limit = 20): Promise<FailedFile[]> {
  const rows = await db.execute<{ id: number; user_id: number; name: string | null; error: string | null; at: Date }>(sql`
    select d.id::float8 as id, d.user_id::float8 as user_id, d.name, f.error, f.updated_at as at
    from document_files f join documents d on d.id = f.document_id
    where f.status = 'failed' order by f.updated_at desc, d.id desc limit ${limit}`);
  return rows.map((r) => ({ documentId: Number(r.id), userId: Number(r.user_id), name: r.name, error: r.error, at: new Date(r.at) }));
}
