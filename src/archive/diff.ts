import { getTableColumns, sql, type InferSelectModel, type SQL } from 'drizzle-orm';
import { sqlArray, sqlColumn, type ColumnType, type ColumnValue } from '../db/arrays.js';
import type { Tx } from '../db/client.js';
import { subscriptions } from '../db/schema/index.js';
import { AppError } from '../errors.js';
import type { ConnectionSync } from './sync.js';
import type { CaptchaTracking } from './captcha/policy.js';
import { recordEvents, type EventType } from '../events/record.js';
import { enqueueMany } from '../jobs/enqueue.js';
import { enqueueFileFetches, filePriority } from '../jobs/files.js';
import { announceJobKey } from '../jobs/keys.js';
import { settingsOf, type Settings } from '../settings.js';
import { presentSubscription } from '../present/presenters.js';

export interface SyncSummary {
  subscriptions: { added: number; deleted: number; restored: number; unchanged: number };
  documents: { added: number; updated: number; unchanged: number };
}

/** `duplicate`: the delivery's claim (see applyConnectionSync's `claim`) found it processed already. */
export type SyncOutcome = { status: 'processed'; summary: SyncSummary } | { status: 'stale' } | { status: 'duplicate' };

export interface SyncResult {
  outcome: SyncOutcome;
  /** The settings the sync was applied under (read in its first statement). */
  settings: Settings;
  /** The connection's captcha tracking as the sync found it, under its lock; null when nothing was applied. */
  captcha: CaptchaTracking | null;
}

/**
 * An erasure of the sync's user or connection committed while the sync waited on the rows
 * it deletes, and the sync created them anew. Undoing that would take a savepoint around
 * every sync; instead the caller rolls its transaction back and applies the webhook again,
 * which then finds the erasure first and is stale (inbound/routes.ts). Rare: it takes an
 * erasure and a sync of the same user at the same moment.
 */
export class ErasedMeanwhile extends Error {
  constructor() {
    super('the user or connection was erased while the sync waited for it');
  }
}

/**
 * The safe archiving rule (README, introduction, point 2), applied to one CONNECTION_SYNCED
 * in the caller's transaction. Set-based: each step is one statement over the whole
 * payload, whatever its size; nothing is queried per subscription or per document.
 *
 * `claim`: a statement returning a row when this delivery is new (inbound/routes.ts); it runs
 * in the sync's first statement, so a duplicate costs one round trip and writes nothing.
 * Throws ErasedMeanwhile (see there).
 */
export async function applyConnectionSync(tx: Tx, conn: ConnectionSync, opts: { claim?: SQL } = {}): Promise<SyncResult> {
  const start = await startSync(tx, conn, opts.claim);
  const result = (outcome: SyncOutcome): SyncResult => ({ outcome, settings: start.settings, captcha: start.captcha });
  if (!start.claimed) return result({ status: 'duplicate' });
  // A sync of an erased user or connection (late, or retried by the aggregator) is older
  // than its erasure: stale, and nothing comes back.
  if (start.erased) return result({ status: 'stale' });
  if (!start.captcha) {
    // The connection row is locked but was left as it was: another user's, or a newer sync's.
    const [row] = await tx.execute<{ user_id: string }>(sql`select user_id from connections where id = ${conn.id}`);
    if (!row) throw new ErasedMeanwhile();
    if (Number(row.user_id) === conn.id_user) return result({ status: 'stale' });
    const refused = await refusals(tx, conn);
    throw refused.erased ? new ErasedMeanwhile() : idConflict(refused.conflicts);
  }

  // Only a sync that created its connection can have met an erasure (see startSync): its
  // subscriptions statement reads the erasures again.
  const subs = await upsertSubscriptions(tx, conn, start.created);
  if (subs.erased) throw new ErasedMeanwhile();
  const docs = await upsertDocuments(tx, conn, start.settings.force_pdf === '1');
  // The upserts never touch a row of another owner (their conflict clauses say so), so
  // what is left to do is to refuse the whole sync if it named one. Checked after them,
  // not before: a concurrent sync claiming the same new id first is only visible once our
  // upsert has waited for it to commit. Throwing rolls back everything, the delivery key too.
  // Looked up only when an upsert met ids it did not write and that were not ours
  // (foreign): every other id of the sync is ours (the connection is, see startSync).
  if (subs.foreign > 0 || docs.foreign > 0) {
    const refused = await refusals(tx, conn, docs.foreign > 0);
    if (refused.erased) throw new ErasedMeanwhile();
    if (refused.conflicts) throw idConflict(refused.conflicts);
  }
  // The file jobs and the subscriptions' events do not depend on each other: queued at once,
  // postgres.js sends their statements in one write and PostgreSQL answers both in one
  // round trip. Both are settled before anything is thrown, so that no statement of this
  // transaction can be sent after it has ended.
  const queued = await Promise.allSettled([
    queueFileJobs(tx, docs),
    recordSubscriptionEvents(tx, [
      ...subs.added.map((s) => ['subscription.created', s] as const),
      ...subs.restored.map((s) => ['subscription.restored', s] as const),
      ...subs.archived.map((s) => ['subscription.deleted', s] as const),
    ], conn.last_update),
  ]);
  for (const q of queued) if (q.status === 'rejected') throw q.reason;

  const docCount = conn.subscriptions.reduce((n, s) => n + s.documents.length, 0);
  return result({
    status: 'processed',
    summary: {
      subscriptions: {
        added: subs.added.length,
        deleted: subs.archived.length,
        restored: subs.restored.length,
        unchanged: subs.kept,
      },
      documents: {
        added: docs.added,
        updated: docs.updated,
        unchanged: docCount - docs.added - docs.updated,
      },
    },
  });
}

/** The erasure of the sync's user or connection, if any, as a condition. */
const erasureOf = (conn: ConnectionSync) =>
  sql`select from erasures where (kind = 'user' and id = ${conn.id_user}) or (kind = 'connection' and id = ${conn.id})`;

/**
 * The sync's first statement, one round trip: claim the delivery, check the erasures, create
 * the user and the connection if new, else update the connection, and lock its row for the
 * rest of the transaction (so two syncs of one connection apply one after the other); read
 * the settings and the connection's captcha tracking on the way.
 *
 * The connection is written by one upsert: `on conflict do update` locks the row it meets
 * (the newest version, even one committed after this statement began) and updates it only
 * when it is this user's and the sync is not older than the one stored (a sync without
 * last_update keeps the stored one, and is never stale). When it is left as it was, it is
 * still locked, and no row comes back (captcha null).
 *
 * An erasure in progress holds the user and connection rows it deletes: the inserts here
 * wait for it, and once it commits they create the rows anew, which this statement's
 * erasure check (its snapshot is older) cannot tell. So when the connection row is new, the
 * erasures are read again by a later statement, which sees what committed meanwhile. When
 * it is not, no erasure of it can have committed since this statement began: it would have
 * deleted the row that the upsert then found and locked.
 */
async function startSync(tx: Tx, conn: ConnectionSync, claim: SQL | undefined) {
  const [row] = await tx.execute<{
    claimed: boolean;
    erased: boolean;
    created: boolean | null;
    captcha_status: string | null;
    captcha_attempts: number | null;
    settings: Record<string, string> | null;
  }>(sql`
    with claim as (${claim ?? sql`select 1`}),
    erased as (select exists (${erasureOf(conn)}) as erased),
    go as (select from claim where not (select erased from erased)),
    new_user as (insert into users (id) select ${conn.id_user} from go on conflict do nothing),
    conn as (
      insert into connections as c (id, user_id, id_connector, state, error_message, last_update, next_try, active)
      select ${conn.id}, ${conn.id_user}, ${conn.id_connector}, ${conn.state}, ${conn.error_message},
        ${conn.last_update?.toISOString() ?? null}::timestamptz, ${conn.next_try?.toISOString() ?? null}::timestamptz, ${conn.active}
      from go
      on conflict (id) do update set
        id_connector = excluded.id_connector, state = excluded.state, error_message = excluded.error_message,
        last_update = coalesce(excluded.last_update, c.last_update), next_try = excluded.next_try,
        active = excluded.active, updated_at = now()
      where c.user_id = excluded.user_id
        and (excluded.last_update < c.last_update) is not true
      returning xmax = 0 as created, c.captcha_status, c.captcha_attempts
    )
    select exists (select from claim) as claimed, (select erased from erased) as erased,
      conn.created, conn.captcha_status, conn.captcha_attempts,
      (select json_object_agg(key, value) from settings) as settings
    from (values (1)) as one left join conn on true`);
  return {
    claimed: row.claimed,
    erased: row.erased,
    /** The connection row is new (this sync's). */
    created: row.created === true,
    captcha: row.captcha_attempts === null ? null : { status: row.captcha_status as CaptchaTracking['status'], attempts: row.captcha_attempts },
    settings: settingsOf(row.settings ?? {}),
  };
}

type IdConflicts = { connections: number[]; subscriptions: number[]; documents: number[] };

/**
 * What refuses this sync once its rows are written: an erasure committed since the first
 * statement (see startSync), or ids of this sync that belong to someone else: the
 * connection of another user, subscriptions of another user or connection, documents of
 * another user or of a subscription of another connection (a document may move between
 * subscriptions of the same connection). One statement over the whole payload.
 * `withDocuments` false: the caller knows every document of the sync is its own.
 */
async function refusals(tx: Tx, conn: ConnectionSync, withDocuments = true): Promise<{ erased: boolean; conflicts: IdConflicts | null }> {
  const subIds = conn.subscriptions.map((s) => s.id);
  const docIds = withDocuments ? conn.subscriptions.flatMap((s) => s.documents.map((d) => d.id)) : [];
  const rows = await tx.execute<{ kind: keyof IdConflicts | 'erased'; id: number }>(sql`
    select 'erased' as kind, 0::float8 as id where exists (${erasureOf(conn)})
    union all
    select 'connections', id::float8 from connections
    where id = ${conn.id} and user_id <> ${conn.id_user}
    union all
    select 'subscriptions', s.id::float8 from subscriptions s
    where s.id = any(${sqlArray(subIds, 'bigint')}) and (s.user_id <> ${conn.id_user} or s.connection_id <> ${conn.id})
    union all
    select 'documents', d.id::float8 from documents d join subscriptions s on s.id = d.subscription_id
    where d.id = any(${sqlArray(docIds, 'bigint')}) and (d.user_id <> ${conn.id_user} or s.connection_id <> ${conn.id})
    order by 1, 2`);
  const out: IdConflicts = { connections: [], subscriptions: [], documents: [] };
  let erased = false;
  for (const r of rows) {
    if (r.kind === 'erased') erased = true;
    else out[r.kind].push(Number(r.id));
  }
  return { erased, conflicts: rows.length > (erased ? 1 : 0) ? out : null };
}

function idConflict(c: IdConflicts | null): AppError {
  const named = Object.entries(c ?? {})
    .filter(([, ids]) => ids.length > 0)
    .map(([kind, ids]) => `${kind} ${ids.join(', ')}`);
  return new AppError('id_conflict', `ids that belong to another user or connection: ${named.join('; ')}`, c ?? undefined);
}

type SubscriptionRow = InferSelectModel<typeof subscriptions>;

/**
 * Upsert the listed subscriptions and, after a successful sync that lists them, flag the
 * connection's others as deleted (a failed sync proves nothing is gone), in one statement:
 * the two touch disjoint rows. Returns the rows that changed state, as they are now (their
 * events carry them): added, restored (were deleted), archived; how many were kept as
 * they were (`kept`) and how many were not written, being another owner's (`foreign`).
 * `recheckErasure`: also say whether the sync's user or connection is erased now (`erased`).
 */
async function upsertSubscriptions(tx: Tx, conn: ConnectionSync, recheckErasure: boolean) {
  const out = { added: [] as SubscriptionRow[], restored: [] as SubscriptionRow[], archived: [] as SubscriptionRow[], kept: 0, foreign: 0, erased: false };
  const archive = conn.state === null && conn.subscriptionsListed;
  if (conn.subscriptions.length === 0 && !archive && !recheckErasure) return out;
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
  const rows = await tx.execute<{ change: 'added' | 'restored' | 'kept' | 'archived' | 'erased' } & Record<string, unknown>>(sql`
    with input as (
      select * from jsonb_to_recordset(${JSON.stringify(input)}::text::jsonb)
        as x(id bigint, number text, label text, subscriber text, validity date, renewdate date, last_update timestamptz)
    ),
    old as (select s.id, s.deleted from subscriptions s join input using (id)),
    up as (
      insert into subscriptions (id, connection_id, user_id, number, label, subscriber, validity, renewdate, last_update, deleted)
      select id, ${conn.id}, ${conn.id_user}, number, label, subscriber, validity, renewdate, last_update, null from input
      on conflict (id) do update set
        number = excluded.number, label = excluded.label, subscriber = excluded.subscriber,
        validity = excluded.validity, renewdate = excluded.renewdate,
        last_update = coalesce(excluded.last_update, subscriptions.last_update), deleted = null
      -- Never another owner's row: refusals() then refuses the sync.
      where subscriptions.connection_id = excluded.connection_id and subscriptions.user_id = excluded.user_id
      returning *
    ),
    archived as (
      update subscriptions set deleted = ${(conn.last_update ?? new Date()).toISOString()}::timestamptz
      where ${archive} and connection_id = ${conn.id} and deleted is null
        and not (id = any(${sqlArray(input.map((s) => s.id), 'bigint')}))
      returning *
    )
    select case when old.id is null then 'added' when old.deleted is not null then 'restored' else 'kept' end as change, up.*
    from up left join old using (id)
    union all
    select 'archived', archived.* from archived
    union all
    -- A row of nulls when the user or connection is erased now.
    select 'erased', s.* from (values (1)) as one left join subscriptions s on false
    where ${recheckErasure} and exists (${erasureOf(conn)})`);
  let written = 0;
  for (const { change, ...row } of rows) {
    if (change === 'erased') out.erased = true;
    else if (change === 'kept') out.kept++;
    else out[change].push(subscriptionRow(row));
    if (change !== 'archived' && change !== 'erased') written++;
  }
  out.foreign = input.length - written;
  return out;
}

/** A subscriptions row as the statement returned it → as drizzle's select gives it (what presenters take). */
function subscriptionRow(raw: Record<string, unknown>): SubscriptionRow {
  const row: Record<string, unknown> = {};
  for (const [key, column] of Object.entries(getTableColumns(subscriptions))) {
    const v = raw[column.name];
    row[key] = v === null || v === undefined ? null : column.mapFromDriverValue(v);
  }
  return row as SubscriptionRow;
}

/** The fields of a document that come from the payload (the diff compares them). */
const DOCUMENT_FIELDS = [
  'subscription_id', 'name', 'type', 'date', 'duedate', 'number', 'issuer', 'total_amount',
  'untaxed_amount', 'vat', 'currency', 'income', 'has_file_on_website', 'source_url',
] as const;
const fieldsOf = (alias: string | null, extra: string[] = []) =>
  sql.raw([...DOCUMENT_FIELDS, ...extra].map((f) => (alias ? `${alias}.${f}` : f)).join(', '));

/**
 * The conflict clause of the documents upsert: never another owner's row (findIdConflicts
 * then refuses the sync); ours only when something changed.
 */
const upsertClause = (conn: ConnectionSync) => sql`
  on conflict (id) do update set
    subscription_id = excluded.subscription_id, name = excluded.name, type = excluded.type, date = excluded.date,
    duedate = excluded.duedate, number = excluded.number, issuer = excluded.issuer,
    total_amount = excluded.total_amount, untaxed_amount = excluded.untaxed_amount, vat = excluded.vat,
    currency = excluded.currency, income = excluded.income, has_file_on_website = excluded.has_file_on_website,
    source_url = excluded.source_url, last_update = excluded.last_update
  where documents.user_id = excluded.user_id
    and documents.subscription_id in (select id from subscriptions where connection_id = ${conn.id})
    and (${fieldsOf('documents', ['last_update'])}) is distinct from (${fieldsOf('excluded', ['last_update'])})`;

/** The columns of the documents input, in the order of the upsert's `unnest`, with their types. */
const INPUT_COLUMNS = [
  ['id', 'bigint'], ['subscription_id', 'bigint'], ['name', 'text'], ['type', 'text'], ['date', 'date'],
  ['duedate', 'date'], ['number', 'text'], ['issuer', 'text'], ['total_amount', 'float8'],
  ['untaxed_amount', 'float8'], ['vat', 'float8'], ['currency', 'text'], ['income', 'boolean'],
  ['has_file_on_website', 'boolean'], ['source_url', 'text'], ['own_last_update', 'timestamptz'],
] as const satisfies readonly (readonly [string, ColumnType])[];

/**
 * The documents of the sync as one array per column of INPUT_COLUMNS, in its order: each
 * array made at its length and filled in place (for a large sync, a row array per document
 * pushed column by column was most of the time spent here).
 */
function documentColumns(conn: ConnectionSync): ColumnValue[][] {
  let n = 0;
  for (const s of conn.subscriptions) n += s.documents.length;
  const columns = INPUT_COLUMNS.map(() => new Array<ColumnValue>(n));
  const [id, subscriptionId, name, type, date, duedate, number, issuer, total, untaxed, vat, currency, income, hasFile, url, lastUpdate] = columns;
  let i = 0;
  for (const s of conn.subscriptions) {
    for (const d of s.documents) {
      id[i] = d.id;
      subscriptionId[i] = s.id;
      name[i] = d.name;
      type[i] = d.type;
      date[i] = d.date;
      duedate[i] = d.duedate;
      number[i] = d.number;
      issuer[i] = d.issuer;
      total[i] = d.total_amount;
      untaxed[i] = d.untaxed_amount;
      vat[i] = d.vat;
      currency[i] = d.currency;
      income[i] = d.income;
      hasFile[i] = d.has_file_on_website;
      url[i] = d.url;
      lastUpdate[i] = d.last_update;
      i++;
    }
  }
  return columns;
}

/**
 * work_mem (kB) for the rest of a sync's transaction (its documents statement, then the
 * file jobs), never less than the server's own. The statement holds its rows in
 * tuplestores — the input, the stored rows, the rows written, the triggers' transition
 * tables — and each one past work_mem goes to a temporary file: at the default 4 MB, a
 * 100,000-document sync wrote and read back ~110 MB of them, ~23% of its database CPU
 * (bench sync). A row takes well under 1 KiB there, so 1 KiB per document, up to 128 MB:
 * past ~130,000 documents the rows spill again, as before, rather than take more of the
 * server's memory for one statement.
 */
export function documentsWorkMemKb(documents: number): number {
  return Math.min(131_072, documents);
}

/**
 * Insert new documents, update changed ones (never re-announced), leave the rest, and give
 * every new document its file row in the same statement: 'pending' when it has a url to
 * fetch, else 'none'. Returns the ids of the added ones by the state of their new file row,
 * and of the known ones that gained a url (their file can be fetched now). `force_pdf` is
 * stamped on new rows only: turning it on later changes nothing for documents already seen.
 *
 * last_update: the document's own when it carries one (a change of it alone is an update);
 * else the sync's when something changed, and the stored one when nothing did.
 *
 * The rows go as one typed array per column (unnest): PostgreSQL parses those at bind time
 * several times faster than the same rows as one jsonb document, whose parse is most of
 * the cost of a large sync's statement (bench/ingest.ts, README "Performance").
 */
async function upsertDocuments(tx: Tx, conn: ConnectionSync, forcePdf: boolean) {
  const columns = documentColumns(conn);
  const out = { added: 0, updated: 0, foreign: 0, filesPending: [] as number[], filesNone: [] as number[], urlGained: [] as number[] };
  if (columns[0].length === 0) return out;
  const syncedAt = conn.last_update?.toISOString() ?? null;
  // The planner cannot estimate the joins of the input with `old` (CTEs have no statistics):
  // for 10,000 rows it expects billions, and JIT-compiles the statement for ~450 ms, where
  // running it takes ~150. Off for the rest of this transaction; nothing in it gains from JIT.
  // work_mem: see documentsWorkMemKb.
  await tx.execute(sql`select set_config('jit', 'off', true),
    set_config('work_mem', greatest(pg_size_bytes(current_setting('work_mem')) / 1024, ${documentsWorkMemKb(columns[0].length)}::bigint) || 'kB', true)`);
  // A column with no value at all (a field the aggregator did not send, such as `income`)
  // goes as an empty array: unnest pads the shorter arrays of its input with nulls.
  const input = sql.join(INPUT_COLUMNS.map(([, type], c) => sqlColumn(columns[c].some((v) => v != null) ? columns[c] : [], type)), sql`, `);
  // As in upsertSubscriptions, `old` is the rows before this statement; the connection lock
  // keeps them from changing under us (documents never leave their connection). A new
  // document has no file row: file rows go with their documents (migration
  // archive_foreign_keys_per_statement), and no other transaction can name a document this
  // one has not committed. So the file rows are a plain insert, not an `on conflict` one
  // (which costs a speculative insertion per row, ~12 ms for 10,000). Their reference to
  // the documents is checked at the end of the statement, when the documents are in.
  //
  // The answer is one row of counts and id lists, not a row per document: for a large sync
  // those rows were a join and a sort in PostgreSQL and as many rows to parse here.
  // `foreign` counts the ids neither written nor ours already (another owner's, before this
  // statement or claimed by a sync that committed while the upsert waited for it): every
  // input row is inserted, ours in `old` (updated or not), or foreign — an updated row is
  // always one of ours in `old`, since the upsert's conflict clause writes no other.
  //
  // The new documents (not in `old`) are a plain insert, the known ones an upsert: `on
  // conflict` costs a speculative insertion per row (~13 ms of CPU for 10,000 new
  // documents), and a known row always conflicts. A new id may be claimed at the same
  // moment by another connection's sync: the plain insert then waits for it and, once it
  // commits, fails on the primary key; the savepoint undoes the statement and it runs again
  // with the new rows upserted too, whose conflict clause leaves that row alone.
  const write = (sx: Tx, newRowsMayConflict: boolean) => sx.execute<{ added: number; updated: number; foreign: number; pending: string | null; none: string | null; url_gained: string | null }>(sql`
    with input as (
      select * from unnest(${input}) as x(${sql.raw(INPUT_COLUMNS.map(([name]) => name).join(', '))})
    ),
    old as (select d.* from documents d join input using (id)),
    prepared as (
      select i.*, o.id is not null as known, case
        when i.own_last_update is not null then i.own_last_update
        when o.id is null then ${syncedAt}::timestamptz
        when (${fieldsOf('i')}) is distinct from (${fieldsOf('o')}) then coalesce(${syncedAt}::timestamptz, o.last_update)
        else o.last_update
      end as last_update
      from input i left join old o using (id)
    ),
    new_rows as (
      insert into documents (id, user_id, force_pdf, ${fieldsOf(null, ['last_update'])})
      select id, ${conn.id_user}, ${forcePdf}, ${fieldsOf('prepared', ['last_update'])} from prepared where not known
      ${newRowsMayConflict ? upsertClause(conn) : sql``}
      returning id, (xmax = 0) as inserted, source_url
    ),
    known_rows as (
      insert into documents (id, user_id, force_pdf, ${fieldsOf(null, ['last_update'])})
      select id, ${conn.id_user}, ${forcePdf}, ${fieldsOf('prepared', ['last_update'])} from prepared where known
      ${upsertClause(conn)}
      returning id, (xmax = 0) as inserted, source_url
    ),
    up as (select * from new_rows union all select * from known_rows),
    files as (
      insert into document_files (document_id, status)
      select id, case when source_url is null then 'none' else 'pending' end from up where inserted
    ),
    written as (
      select count(*) filter (where inserted)::int as added, count(*) filter (where not inserted)::int as updated,
        string_agg(id::text, ',') filter (where inserted and source_url is not null) as pending,
        string_agg(id::text, ',') filter (where inserted and source_url is null) as none
      from up
    )
    select w.added, w.updated, w.pending, w.none,
      ((select count(*) from input) - w.added - (
        select count(*) from old where user_id = ${conn.id_user}
          and subscription_id in (select id from subscriptions where connection_id = ${conn.id})))::int as foreign,
      (select string_agg(up.id::text, ',') from up join old using (id)
        where not up.inserted and old.source_url is null and up.source_url is not null) as url_gained
    from written w`);
  let r;
  try {
    [r] = await tx.transaction((sp) => write(sp, false));
  } catch (e) {
    // A QueryError (db/redact.ts); matched by its fields, as app.ts matches database errors.
    const { code, constraint } = (e ?? {}) as { code?: string; constraint?: string };
    if (code !== '23505' || constraint !== 'documents_pkey') throw e;
    [r] = await write(tx, true);
  }
  const ids = (list: string | null) => (list === null ? [] : list.split(',').map(Number));
  out.added = r.added;
  out.updated = r.updated;
  out.foreign = r.foreign;
  out.filesPending = ids(r.pending);
  out.filesNone = ids(r.none);
  out.urlGained = ids(r.url_gained);
  return out;
}

/**
 * Every new document has its file row, written by upsertDocuments in this transaction;
 * here it gets a file job when it has a url (one batch job per 100 documents, at a priority
 * that puts large syncs after small ones: jobs/files.ts). The job settles the file (ready
 * or failed) and then hands the document over to notifications, so that announcing always
 * follows the file; a document without a url has nothing to wait for and is handed over at
 * once (its announce job, here), so it never waits behind downloads. A known document that
 * had no url and now has one gets its file job now (its file goes from none to pending); it
 * was announced already and is not announced again (the announcement's dedupe key).
 */
async function queueFileJobs(tx: Tx, files: { filesPending: number[]; filesNone: number[]; urlGained: number[] }): Promise<void> {
  const { filesPending: pending, filesNone: none, urlGained } = files;
  const refetch =
    urlGained.length === 0
      ? []
      : await tx.execute<{ id: number }>(sql`
          update document_files set status = 'pending', error = null, attempts = 0, claimed_at = null, updated_at = now()
          where document_id = any(${sqlArray(urlGained, 'bigint')}) and status = 'none'
          returning document_id::float8 as id`);
  // The sync's size, not only its files', sets the priority: its announcements follow it.
  const priority = filePriority(pending.length + none.length + refetch.length);
  await enqueueFileFetches(tx, [...pending, ...refetch.map((r) => Number(r.id))], priority);
  await enqueueMany(tx, 'announce_document', none.map((documentId) => ({ payload: { documentId }, jobKey: announceJobKey(documentId), priority })));
}

async function recordSubscriptionEvents(
  tx: Tx,
  changes: (readonly [EventType, SubscriptionRow])[],
  at: Date | null,
): Promise<void> {
  if (changes.length === 0) return;
  const stamp = (at ?? new Date()).toISOString();
  await recordEvents(
    tx,
    // One event per change: a subscription deleted, restored and deleted again yields three.
    changes.map(([type, s]) => ({ type, dedupeKey: `${type}:${s.id}:${stamp}`, userId: s.userId, connectionId: s.connectionId, data: { subscription: presentSubscription(s) } })),
  );
}
