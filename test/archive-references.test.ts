import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import type postgres from 'postgres';
import { eraseConnection } from '../src/archive/erase.js';
import { createTestDatabase, type TestDatabase } from './helpers/db.js';
import { waitUntil } from './helpers/receiver.js';

// documents → subscriptions, documents.duplicate_of → documents and document_files →
// documents are checked by statement-level triggers, not foreign keys (the
// archive_foreign_keys_per_statement migration): they must guarantee what the foreign keys
// did — nothing written names a missing parent, deletes cascade, nothing is ever orphaned,
// also when a parent is deleted while a child naming it is being written.
let db: TestDatabase;
let sql: postgres.Sql;
beforeAll(async () => {
  db = await createTestDatabase();
  sql = db.sql;
});
afterAll(async () => {
  await db.drop();
});

/** User u, its connection u*10 with subscriptions u*100+1 and +2, each with two documents and their file rows. */
async function archive(u: number) {
  const c = u * 10, s = [u * 100 + 1, u * 100 + 2], d = [u * 1000 + 1, u * 1000 + 2, u * 1000 + 3, u * 1000 + 4];
  await sql`insert into users (id) values (${u})`;
  await sql`insert into connections (id, user_id) values (${c}, ${u})`;
  await sql`insert into subscriptions (id, connection_id, user_id) values (${s[0]}, ${c}, ${u}), (${s[1]}, ${c}, ${u})`;
  await sql`insert into documents (id, subscription_id, user_id) values (${d[0]}, ${s[0]}, ${u}), (${d[1]}, ${s[0]}, ${u}), (${d[2]}, ${s[1]}, ${u}), (${d[3]}, ${s[1]}, ${u})`;
  await sql`insert into document_files (document_id, status) select unnest(${d}::bigint[]), 'none'`;
  return { c, s, d };
}

/** Rows naming a parent that is not there: none, ever. */
async function orphans() {
  const [row] = await sql<{ documents: number; files: number; duplicates: number }[]>`
    select
      (select count(*)::int from documents d where not exists (select from subscriptions s where s.id = d.subscription_id)) as documents,
      (select count(*)::int from document_files f where not exists (select from documents d where d.id = f.document_id)) as files,
      (select count(*)::int from documents d where d.duplicate_of is not null
        and not exists (select from documents o where o.id = d.duplicate_of)) as duplicates`;
  return row;
}
const none = { documents: 0, files: 0, duplicates: 0 };

async function refused(statement: Promise<unknown>) {
  await expect(statement).rejects.toMatchObject({ code: '23503' });
}

describe('a reference to nothing is refused', () => {
  it('on insert and on update, for every statement, however many rows it writes', async () => {
    const { s, d } = await archive(1);
    await refused(sql`insert into documents (id, subscription_id, user_id) values (1901, ${s[0]}, 1), (1902, 999, 1)`);
    await refused(sql`insert into documents (id, subscription_id, user_id, duplicate_of) values (1903, ${s[0]}, 1, 999)`);
    await refused(sql`update documents set subscription_id = 999 where id = ${d[0]}`);
    await refused(sql`update documents set duplicate_of = 999 where id = ${d[0]}`);
    await refused(sql`insert into document_files (document_id, status) values (999, 'none')`);
    await sql`insert into documents (id, subscription_id, user_id) values (1904, ${s[0]}, 1)`;
    await refused(sql`insert into document_files (document_id, status) values (1904, 'none'), (998, 'none')`);
    expect(await sql`select from document_files where document_id = 1904`).toHaveLength(0);
    // What is there is accepted: a move within existing subscriptions, a repeat of an existing document.
    await sql`update documents set subscription_id = ${s[1]}, duplicate_of = ${d[1]}, duplicate_reason = 'file' where id = ${d[0]}`;
    expect(await orphans()).toEqual(none);
  });

  it('the ids that rows reference never change', async () => {
    const { s, d } = await archive(2);
    await refused(sql`update subscriptions set id = 999 where id = ${s[0]}`);
    await refused(sql`update documents set id = 999 where id = ${d[0]}`);
    await refused(sql`update document_files set document_id = ${d[1]} where document_id = ${d[0]}`);
    await sql`update subscriptions set label = 'unchanged id', id = id where id = ${s[0]}`;
  });
});

describe('deletes cascade', () => {
  it('erasing a connection takes its subscriptions, documents and file rows, and leaves other users’ alone', async () => {
    const a = await archive(3);
    const b = await archive(4);
    await db.db.transaction((tx) => eraseConnection(tx, a.c));
    const left = await sql<{ id: number }[]>`select id::int from documents where user_id in (3, 4) order by id`;
    expect(left.map((r) => r.id)).toEqual(b.d);
    const files = await sql<{ id: number }[]>`select document_id::int as id from document_files where document_id = any(${[...a.d, ...b.d]}::bigint[]) order by 1`;
    expect(files.map((r) => r.id)).toEqual(b.d);
    expect(await orphans()).toEqual(none);
  });

  it('deleting a subscription takes its documents; deleting a document takes its file row and nulls duplicate_of where it was named', async () => {
    const { s, d } = await archive(5);
    await sql`update documents set duplicate_of = ${d[0]}, duplicate_reason = 'file' where id in (${d[1]}, ${d[2]})`;
    await sql`delete from documents where id = ${d[0]}`;
    const repeats = await sql`select id::int, duplicate_of, duplicate_reason from documents where id in (${d[1]}, ${d[2]}) order by id`;
    expect(repeats).toEqual([{ id: d[1], duplicate_of: null, duplicate_reason: 'file' }, { id: d[2], duplicate_of: null, duplicate_reason: 'file' }]);
    await sql`delete from subscriptions where id = ${s[1]}`;
    expect((await sql`select id::int from documents where user_id = 5`).map((r) => r.id)).toEqual([d[1]]);
    expect((await sql`select document_id::int as id from document_files where document_id = any(${d}::bigint[])`).map((r) => r.id)).toEqual([d[1]]);
    expect(await orphans()).toEqual(none);
  });
});

describe('a parent deleted while a child naming it is written', () => {
  // Each case: the delete of a parent, and a write of a row that names it.
  const cases = [
    {
      name: 'a subscription, and a document of it',
      remove: (t: postgres.TransactionSql, u: ReturnType<typeof ids>) => t`delete from subscriptions where id = ${u.s[0]}`,
      write: (t: postgres.TransactionSql, u: ReturnType<typeof ids>) => t`insert into documents (id, subscription_id, user_id) values (${u.d[3] + 10}, ${u.s[0]}, ${u.u})`,
    },
    {
      name: 'a document, and a file row of it',
      remove: (t: postgres.TransactionSql, u: ReturnType<typeof ids>) => t`delete from documents where id = ${u.d[0]}`,
      write: (t: postgres.TransactionSql, u: ReturnType<typeof ids>) => t`delete from document_files where document_id = ${u.d[0]}`.then(() => t`insert into document_files (document_id, status) values (${u.d[0]}, 'pending')`),
    },
    {
      name: 'a document, and a repeat naming it',
      remove: (t: postgres.TransactionSql, u: ReturnType<typeof ids>) => t`delete from documents where id = ${u.d[0]}`,
      write: (t: postgres.TransactionSql, u: ReturnType<typeof ids>) => t`update documents set duplicate_of = ${u.d[0]}, duplicate_reason = 'file' where id = ${u.d[3]}`,
    },
  ];
  const ids = (u: number) => ({ u, s: [u * 100 + 1, u * 100 + 2], d: [u * 1000 + 1, u * 1000 + 2, u * 1000 + 3, u * 1000 + 4] });
  let user = 10;

  /** `first` runs in a transaction held open until `second` (another connection) waits on it; then it commits. */
  async function whileFirstHolds(first: (t: postgres.TransactionSql) => Promise<unknown>, second: (t: postgres.TransactionSql) => Promise<unknown>) {
    let release!: () => void;
    const gate = new Promise<void>((resolve) => (release = resolve));
    let pid = 0;
    const holding = sql.begin(async (t) => {
      pid = (await t<{ pid: number }[]>`select pg_backend_pid() as pid`)[0].pid;
      await first(t);
      await gate;
    });
    let waiting: Promise<string> | undefined;
    try {
      await waitUntil(async () => pid !== 0 && (await sql`select 1 from pg_stat_activity where pid = ${pid} and state = 'idle in transaction'`).length > 0, 10_000, 'the first transaction to hold');
      waiting = sql.begin((t) => second(t)).then(() => 'done', (e: { code?: string }) => e.code ?? 'error');
      await waitUntil(async () => (await sql`select 1 from pg_stat_activity where ${pid} = any(pg_blocking_pids(pid))`).length > 0, 10_000, 'the second transaction to wait on the first');
    } finally {
      // Also when a wait above failed: a transaction left open would hold the next cases up.
      release();
      await holding;
    }
    return waiting;
  }

  it.each(cases)('$name, the delete first: the write waits, then is refused', async ({ remove, write }) => {
    const u = ids(++user);
    await archive(u.u);
    expect(await whileFirstHolds((t) => remove(t, u), (t) => write(t, u))).toBe('23503');
    expect(await orphans()).toEqual(none);
  });

  it.each(cases)('$name, the write first: the delete waits, then takes the new row with it', async ({ remove, write }) => {
    const u = ids(++user);
    await archive(u.u);
    expect(await whileFirstHolds((t) => write(t, u), (t) => remove(t, u))).toBe('done');
    expect(await orphans()).toEqual(none);
  });
});
