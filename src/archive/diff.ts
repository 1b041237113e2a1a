import { and, eq, inArray, sql } from 'drizzle-orm';
import { sqlArray } from '../db/arrays.js';
import type { Tx } from '../db/client.js';
import { connections, subscriptions, users } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import { wasErased } from './erase.js';
import type { ConnectionSync } from './sync.js';
import { recordEvents, type EventType } from '../events/record.js';
import { enqueueMany } from '../jobs/enqueue.js';
import { fileJobKey } from '../jobs/keys.js';
import type { Settings } from '../settings.js';
import { presentSubscription } from '../present/presenters.js';

export interface SyncSummary {
  subscriptions: { added: number; deleted: number; restored: number; unchanged: number };
  documents: { added: number; updated: number; unchanged: number };
}

export type SyncOutcome = { status: 'processed'; summary: SyncSummary } | { status: 'stale' };

/**
 * The safe archiving rule (README, introduction, point 2), applied to one CONNECTION_SYNCED
 * in the caller's transaction. Set-based: each step is one statement over the whole
 * payload, whatever its size; nothing is queried per subscription or per document.
 */
export async function applyConnectionSync(tx: Tx, conn: ConnectionSync, settings: Settings): Promise<SyncOutcome> {
  // A sync of an erased user or connection (late, or retried by the aggregator) is older
  // than its erasure: stale, and nothing comes back.
  if (await wasErased(tx, conn.id_user, conn.id)) return { status: 'stale' };
  await tx.insert(users).values({ id: conn.id_user }).onConflictDoNothing();
  if (!(await lockConnection(tx, conn))) return { status: 'stale' };

  await tx
    .update(connections)
    .set({
      idConnector: conn.id_connector,
      state: conn.state,
      errorMessage: conn.error_message,
      lastUpdate: conn.last_update,
      nextTry: conn.next_try,
      active: conn.active,
      updatedAt: sql`now()`,
    })
    .where(eq(connections.id, conn.id));

  const subs = await upsertSubscriptions(tx, conn);
  // A failed sync proves nothing is gone: only a successful one that lists the
  // subscriptions it found archives the others.
  const archived = conn.state === null && conn.subscriptionsListed ? await archiveMissingSubscriptions(tx, conn) : [];
  const docs = await upsertDocuments(tx, conn, settings.force_pdf === '1');
  await queueFileJobs(tx, docs.added);
  await recordSubscriptionEvents(tx, [
    ...subs.added.map((id) => ['subscription.created', id] as const),
    ...subs.restored.map((id) => ['subscription.restored', id] as const),
    ...archived.map((id) => ['subscription.deleted', id] as const),
  ], conn.last_update);

  const listed = conn.subscriptions.length;
  const docCount = conn.subscriptions.reduce((n, s) => n + s.documents.length, 0);
  return {
    status: 'processed',
    summary: {
      subscriptions: {
        added: subs.added.length,
        deleted: archived.length,
        restored: subs.restored.length,
        unchanged: listed - subs.added.length - subs.restored.length,
      },
      documents: {
        added: docs.added.length,
        updated: docs.updated,
        unchanged: docCount - docs.added.length - docs.updated,
      },
    },
  };
}

/**
 * Create the connection if new, then lock its row for the rest of the transaction, so two
 * syncs of one connection apply one after the other. Returns false for a stale sync: one
 * whose last_update is older than the one already applied.
 */
async function lockConnection(tx: Tx, conn: ConnectionSync): Promise<boolean> {
  const created = await tx
    .insert(connections)
    .values({ id: conn.id, userId: conn.id_user })
    .onConflictDoNothing()
    .returning({ id: connections.id });
  const [row] = await tx
    .select({ userId: connections.userId, lastUpdate: connections.lastUpdate })
    .from(connections)
    .where(eq(connections.id, conn.id))
    .for('update');
  if (row.userId !== conn.id_user) {
    throw new AppError('invalid_payload', `connection ${conn.id} belongs to another user`);
  }
  if (created.length > 0) return true;
  return !(row.lastUpdate && conn.last_update && conn.last_update < row.lastUpdate);
}

async function upsertSubscriptions(tx: Tx, conn: ConnectionSync) {
  if (conn.subscriptions.length === 0) return { added: [] as number[], restored: [] as number[] };
  const input = conn.subscriptions.map((s) => ({
    id: s.id,
    number: s.number,
    label: s.label,
    subscriber: s.subscriber,
    validity: s.validity,
    renewdate: s.renewdate,
    last_update: s.last_update ?? conn.last_update,
  }));
  // `old` reads the rows as they were before this statement (one snapshot for all CTEs),
  // which tells added (no old row) and restored (old row was deleted) apart.
  const rows = await tx.execute<{ id: number; added: boolean; restored: boolean }>(sql`
    with input as (
      select * from jsonb_to_recordset(${JSON.stringify(input)}::text::jsonb)
        as x(id bigint, number text, label text, subscriber text, validity date, renewdate date, last_update timestamptz)
    ),
    old as (select s.id, s.deleted from subscriptions s join input using (id)),
    up as (
      insert into subscriptions (id, connection_id, user_id, number, label, subscriber, validity, renewdate, last_update, deleted)
      select id, ${conn.id}, ${conn.id_user}, number, label, subscriber, validity, renewdate, last_update, null from input
      on conflict (id) do update set
        connection_id = excluded.connection_id, user_id = excluded.user_id, number = excluded.number,
        label = excluded.label, subscriber = excluded.subscriber, validity = excluded.validity,
        renewdate = excluded.renewdate, last_update = excluded.last_update, deleted = null
      returning id
    )
    select up.id::float8 as id, old.id is null as added, coalesce(old.deleted is not null, false) as restored
    from up left join old using (id)`);
  return {
    added: rows.filter((r) => r.added).map((r) => Number(r.id)),
    restored: rows.filter((r) => r.restored).map((r) => Number(r.id)),
  };
}

/** Flag the connection's subscriptions this successful sync did not list. */
async function archiveMissingSubscriptions(tx: Tx, conn: ConnectionSync): Promise<number[]> {
  const listed = conn.subscriptions.map((s) => s.id);
  const rows = await tx.execute<{ id: number }>(sql`
    update subscriptions set deleted = ${(conn.last_update ?? new Date()).toISOString()}::timestamptz
    where connection_id = ${conn.id} and deleted is null
      and not (id = any(${sqlArray(listed, 'bigint')}))
    returning id::float8 as id`);
  return rows.map((r) => Number(r.id));
}

/**
 * Insert new documents, update changed ones (never re-announced), leave the rest. Returns
 * the ids of the added ones. `force_pdf` is stamped on new rows only: turning it on later
 * changes nothing for documents already seen.
 */
async function upsertDocuments(tx: Tx, conn: ConnectionSync, forcePdf: boolean) {
  const input = conn.subscriptions.flatMap((s) =>
    s.documents.map((d) => ({
      id: d.id,
      subscription_id: s.id,
      name: d.name,
      type: d.type,
      date: d.date,
      duedate: d.duedate,
      number: d.number,
      issuer: d.issuer,
      total_amount: d.total_amount,
      untaxed_amount: d.untaxed_amount,
      vat: d.vat,
      currency: d.currency,
      income: d.income,
      has_file_on_website: d.has_file_on_website,
      source_url: d.url,
      last_update: d.last_update ?? conn.last_update,
    })),
  );
  if (input.length === 0) return { added: [] as number[], updated: 0 };
  const rows = await tx.execute<{ id: number; inserted: boolean }>(sql`
    with input as (
      select * from jsonb_to_recordset(${JSON.stringify(input)}::text::jsonb) as x(
        id bigint, subscription_id bigint, name text, type text, date date, duedate date, number text,
        issuer text, total_amount float8, untaxed_amount float8, vat float8, currency text, income boolean,
        has_file_on_website boolean, source_url text, last_update timestamptz)
    )
    insert into documents (id, subscription_id, user_id, name, type, date, duedate, number, issuer,
      total_amount, untaxed_amount, vat, currency, income, has_file_on_website, source_url, force_pdf, last_update)
    select id, subscription_id, ${conn.id_user}, name, type, date, duedate, number, issuer,
      total_amount, untaxed_amount, vat, currency, income, has_file_on_website, source_url, ${forcePdf}, last_update
    from input
    on conflict (id) do update set
      subscription_id = excluded.subscription_id, name = excluded.name, type = excluded.type, date = excluded.date,
      duedate = excluded.duedate, number = excluded.number, issuer = excluded.issuer,
      total_amount = excluded.total_amount, untaxed_amount = excluded.untaxed_amount, vat = excluded.vat,
      currency = excluded.currency, income = excluded.income, has_file_on_website = excluded.has_file_on_website,
      source_url = excluded.source_url, last_update = excluded.last_update
    where (documents.subscription_id, documents.name, documents.type, documents.date, documents.duedate,
           documents.number, documents.issuer, documents.total_amount, documents.untaxed_amount, documents.vat,
           documents.currency, documents.income, documents.has_file_on_website, documents.source_url)
      is distinct from
          (excluded.subscription_id, excluded.name, excluded.type, excluded.date, excluded.duedate,
           excluded.number, excluded.issuer, excluded.total_amount, excluded.untaxed_amount, excluded.vat,
           excluded.currency, excluded.income, excluded.has_file_on_website, excluded.source_url)
    returning id::float8 as id, (xmax = 0) as inserted`);
  const added = rows.filter((r) => r.inserted).map((r) => Number(r.id));
  return { added, updated: rows.length - added.length };
}

/**
 * Every new document gets a file row and a file job, in this transaction. The job settles
 * the file (ready, failed, or none without a url) and then hands the document over to
 * notifications, so that announcing always follows the file.
 */
async function queueFileJobs(tx: Tx, documentIds: number[]): Promise<void> {
  if (documentIds.length === 0) return;
  await tx.execute(sql`
    insert into document_files (document_id, status)
    select id, case when source_url is null then 'none' else 'pending' end
    from documents where id = any(${sqlArray(documentIds, 'bigint')})
    on conflict (document_id) do nothing`);
  await enqueueMany(
    tx,
    'fetch_document_file',
    documentIds.map((documentId) => ({ payload: { documentId }, jobKey: fileJobKey(documentId) })),
  );
}

async function recordSubscriptionEvents(
  tx: Tx,
  changes: (readonly [EventType, number])[],
  at: Date | null,
): Promise<void> {
  if (changes.length === 0) return;
  const rows = await tx
    .select()
    .from(subscriptions)
    .where(and(inArray(subscriptions.id, changes.map(([, id]) => id))));
  const byId = new Map(rows.map((r) => [r.id, r]));
  const stamp = (at ?? new Date()).toISOString();
  await recordEvents(
    tx,
    changes.map(([type, id]) => {
      const s = byId.get(id)!;
      // One event per change: a subscription deleted, restored and deleted again yields three.
      return { type, dedupeKey: `${type}:${id}:${stamp}`, userId: s.userId, connectionId: s.connectionId, data: { subscription: presentSubscription(s) } };
    }),
  );
}
