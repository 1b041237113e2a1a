/**
 * `npx tsx bench/explain-hot-queries.ts`: the hot queries' plans on a seeded million-row
 * database, without and with the indexes of migration 0013 (issue 9), by EXPLAIN
 * (ANALYZE, BUFFERS). For each query it prints the verdict of each plan — which tables are
 * read by a sequential scan, which through which index — its execution time (foreign-key
 * cascades included) and the buffers it touched. Statements that write run in a
 * transaction that is rolled back, so each one sees the same rows. The "before" runs drop
 * the new indexes inside that transaction; a run past STATEMENT_TIMEOUT is reported as such.
 *
 * Uses TEST_DATABASE_URL / DATABASE_URL (a server it may create a database on), else an
 * embedded PostgreSQL. Not part of `npm run bench`: seeding takes a minute or two.
 */
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { migrateDatabase } from '../src/db/migrate.js';
import { pgServer, stopPgServer } from './support.js';

const NEW_INDEXES = [
  'delivery_attempts_message_id_idx', 'messages_pending_due_idx', 'messages_created_at_idx',
  'events_created_at_idx', 'inbound_deliveries_received_at_idx', 'email_deliveries_updated_at_idx', 'captcha_attempts_at_idx',
];
const ROWS = 1_000_000; // events, messages, delivery attempts, inbound keys
const DOCUMENTS = 200_000; // documents, their files and mails
const STATEMENT_TIMEOUT = '20s';

/** The hot queries, as the code runs them (constants in place of its parameters). */
const QUERIES: { name: string; sql: string }[] = [
  {
    name: 'erasure of a connection (events → messages → delivery_attempts cascade; 20 of each)',
    sql: `delete from events where connection_id = 9999`,
  },
  {
    name: 'stranded-message sweep (notify/sweep.ts)',
    sql: `select m.id, m.attempts, m.endpoint_id, e.failing_since is not null as failing
      from messages m join webhook_endpoints e on e.id = m.endpoint_id
      where m.status = 'pending' and e.svix_endpoint_id is null
        and coalesce(m.next_attempt_at, m.created_at) < now() - '15 minutes'::interval
      order by m.created_at limit 1000`,
  },
  {
    name: 'operator page: deliveries of the last 24 h',
    sql: `select date_trunc('hour', at) as hour, count(*) from delivery_attempts where at >= now() - interval '23 hours' group by 1`,
  },
  {
    name: 'operator page: webhooks in of the last 24 h',
    sql: `select date_trunc('hour', received_at) as hour, count(*) from inbound_deliveries where received_at >= now() - interval '23 hours' group by 1`,
  },
  {
    name: 'operator page: mails of the last 24 h',
    sql: `select date_trunc('hour', updated_at) as hour, count(*) from email_deliveries where updated_at >= now() - interval '23 hours' group by 1`,
  },
  {
    name: 'operator page: documents of the last 24 h (not indexed; for reference)',
    sql: `select date_trunc('hour', rdate) as hour, count(*) from documents where rdate >= now() - interval '23 hours' group by 1`,
  },
  {
    name: 'GET /webhook-endpoints/{id}/deliveries (existing index)',
    sql: `select a.*, ev.type from delivery_attempts a join messages m on m.id = a.message_id join events ev on ev.id = m.event_id
      where a.endpoint_id = 'ep7' order by a.at desc, a.id desc limit 100`,
  },
  {
    name: 'endpoint health: attempts in the window (existing index)',
    sql: `select count(*), count(*) filter (where status_code between 200 and 299) from delivery_attempts
      where endpoint_id = 'ep7' and at > now() - interval '24 hours'`,
  },
  {
    name: 'replay ?since= (notify/resend.ts)',
    sql: `update messages set status = 'pending', next_attempt_at = now()
      where endpoint_id = 'ep7' and ((status = 'failed') or (status = 'pending' and next_attempt_at > now()))
        and created_at >= now() - interval '7 days'`,
  },
  {
    name: 'prune: one batch of messages (with their attempts)',
    sql: `delete from messages m where m.id in (select id from messages where created_at < now() - interval '30 days' and status in ('succeeded', 'failed') limit 5000)
      and m.created_at < now() - interval '30 days' and m.status in ('succeeded', 'failed')`,
  },
  {
    name: 'prune: one batch of events (after their messages went)',
    sql: `delete from events e where e.id in (select id from events x where x.created_at < now() - interval '59 days'
        and not exists (select 1 from messages m where m.event_id = x.id) limit 5000)
      and e.created_at < now() - interval '59 days' and not exists (select 1 from messages m where m.event_id = e.id)`,
  },
  {
    name: 'prune: one batch of inbound keys',
    sql: `delete from inbound_deliveries where key in (select key from inbound_deliveries where received_at < now() - interval '30 days' limit 5000)
      and received_at < now() - interval '30 days'`,
  },
  {
    name: 'prune: one batch of the mail log',
    sql: `delete from email_deliveries d where d.document_id in (select document_id from email_deliveries where updated_at < now() - interval '30 days' and status in ('sent', 'failed') limit 5000)
      and d.updated_at < now() - interval '30 days' and d.status in ('sent', 'failed')`,
  },
];

async function seed(sql: postgres.Sql) {
  const spread = (g: string, n: number) => `now() - (${n} - ${g}) * interval '60 days' / ${n}`; // oldest first, over 60 days
  await sql.unsafe(`insert into users (id) select g from generate_series(1, 1000) g`);
  await sql.unsafe(`insert into connections (id, user_id) select g, g from generate_series(1, 1000) g`);
  await sql.unsafe(`insert into users (id) values (9999); insert into connections (id, user_id) values (9999, 9999)`);
  await sql.unsafe(`insert into subscriptions (id, connection_id, user_id) select g * 10, g, g from generate_series(1, 1000) g`);
  await sql.unsafe(`insert into documents (id, subscription_id, user_id, name, type, date, rdate)
    select g, (g % 1000 + 1) * 10, g % 1000 + 1, 'Bill ' || g, 'bill', date '2024-01-01' + g % 700, ${spread('g', DOCUMENTS)}
    from generate_series(1, ${DOCUMENTS}) g`);
  await sql.unsafe(`insert into document_files (document_id, status, updated_at) select id, 'none', rdate from documents`);
  await sql.unsafe(`insert into email_deliveries (document_id, user_id, "to", message_id, status, updated_at, sent_at)
    select id, user_id, 'user@example.com', '<d' || id || '@docrelay>', 'sent', rdate, rdate from documents`);
  await sql.unsafe(`insert into webhook_endpoints (id, url, secret) select 'ep' || g, 'https://receiver.example/' || g, 'whsec_x' from generate_series(1, 20) g`);
  // One message per event; 1 % failed, 0.1 % pending (half of those in a backoff).
  await sql.unsafe(`insert into events (id, dedupe_key, type, user_id, connection_id, data, created_at)
    select 'evt_' || g, 'k' || g, 'document.created', g % 1000 + 1, g % 1000 + 1, '{}', ${spread('g', ROWS)} from generate_series(1, ${ROWS}) g`);
  await sql.unsafe(`insert into messages (id, event_id, endpoint_id, status, attempts, next_attempt_at, created_at)
    select 'msg_' || g, 'evt_' || g, 'ep' || (g % 20 + 1),
      case when g % 1000 = 0 then 'pending' when g % 100 = 0 then 'failed' else 'succeeded' end, 1,
      case when g % 2000 = 0 then now() + interval '2 hours' end, ${spread('g', ROWS)}
    from generate_series(1, ${ROWS}) g`);
  await sql.unsafe(`insert into delivery_attempts (message_id, endpoint_id, attempt, status_code, duration_ms, response, at)
    select 'msg_' || g, 'ep' || (g % 20 + 1), 1, case when g % 100 = 0 then 500 else 200 end, 5, repeat('x', 200), ${spread('g', ROWS)}
    from generate_series(1, ${ROWS}) g`);
  // The erased connection's own: 20 events, messages and attempts.
  await sql.unsafe(`insert into events (id, dedupe_key, type, user_id, connection_id, data) select 'evt_c' || g, 'kc' || g, 'document.created', 9999, 9999, '{}' from generate_series(1, 20) g`);
  await sql.unsafe(`insert into messages (id, event_id, endpoint_id, status, attempts) select 'msg_c' || g, 'evt_c' || g, 'ep1', 'succeeded', 1 from generate_series(1, 20) g`);
  await sql.unsafe(`insert into delivery_attempts (message_id, endpoint_id, attempt, status_code, duration_ms) select 'msg_c' || g, 'ep1', 1, 200, 5 from generate_series(1, 20) g`);
  await sql.unsafe(`insert into inbound_deliveries (key, event, outcome, received_at)
    select 'CONNECTION_SYNCED:' || g, 'CONNECTION_SYNCED', 'processed', ${spread('g', ROWS)} from generate_series(1, ${ROWS}) g`);
  await sql.unsafe(`insert into captcha_attempts (connection_id, kind, attempt, at) select g % 1000 + 1, 'failure', 1, ${spread('g', 100_000)} from generate_series(1, 100000) g`);
  await sql.unsafe(`vacuum analyze`);
}

interface PlanNode { 'Node Type': string; 'Relation Name'?: string; 'Index Name'?: string; Plans?: PlanNode[] }
interface Explained { Plan: PlanNode; 'Execution Time': number; Triggers?: { 'Constraint Name'?: string; 'Trigger Name': string; Time: number; Calls: number }[] }

/** "seq scan on X, index messages_x_idx on Y…": what each table was read with. */
function verdict(plan: PlanNode): string {
  const out: string[] = [];
  const walk = (n: PlanNode) => {
    if (n['Node Type'] === 'Seq Scan') out.push(`SEQ SCAN ${n['Relation Name']}`);
    else if (n['Index Name']) out.push(`${n['Node Type'].toLowerCase()} ${n['Index Name']}`);
    for (const c of n.Plans ?? []) walk(c);
  };
  walk(plan);
  return [...new Set(out)].join(', ') || plan['Node Type'];
}

async function explain(sql: postgres.Sql, query: string, dropIndexes: boolean): Promise<string> {
  try {
    return await sql.begin(async (tx) => {
      await tx.unsafe(`set local statement_timeout = '${STATEMENT_TIMEOUT}'`);
      if (dropIndexes) for (const i of NEW_INDEXES) await tx.unsafe(`drop index ${i}`);
      const [row] = await tx.unsafe(`explain (analyze, buffers, format json) ${query}`);
      const e = (row['QUERY PLAN'] as Explained[])[0];
      const buffers = (e.Plan as unknown as Record<string, number>)['Shared Hit Blocks'] + (e.Plan as unknown as Record<string, number>)['Shared Read Blocks'];
      const cascades = (e.Triggers ?? []).filter((t) => t.Calls > 0).map((t) => `${t['Constraint Name'] ?? t['Trigger Name']} ${t.Time.toFixed(0)} ms`);
      await tx.unsafe('rollback and chain'); // undo the statement, keep the transaction for begin() to end
      return `${e['Execution Time'].toFixed(1)} ms, ${buffers} buffers — ${verdict(e.Plan)}${cascades.length ? ` (cascades: ${cascades.join(', ')})` : ''}`;
    });
  } catch (err) {
    if ((err as { code?: string }).code === '57014') return `> ${STATEMENT_TIMEOUT} (statement timeout)`;
    throw err;
  }
}

const { url } = await pgServer();
const name = `docrelay_explain_${randomBytes(4).toString('hex')}`;
const adminUrl = new URL(url);
adminUrl.pathname = '/postgres';
const admin = postgres(adminUrl.toString(), { max: 1, onnotice: () => {} });
await admin.unsafe(`create database ${name}`);
const dbUrl = new URL(url);
dbUrl.pathname = `/${name}`;
const sql = postgres(dbUrl.toString(), { max: 1, onnotice: () => {} });
try {
  await migrateDatabase(dbUrl.toString());
  let t = performance.now();
  await seed(sql);
  console.log(`seeded ${ROWS.toLocaleString('en')} events, messages, delivery attempts and inbound keys, ${DOCUMENTS.toLocaleString('en')} documents and mails in ${((performance.now() - t) / 1000).toFixed(0)} s`);
  for (const q of QUERIES) {
    t = performance.now();
    // Each plan twice, the second reported: both read a warm cache.
    await explain(sql, q.sql, true);
    const before = await explain(sql, q.sql, true);
    await explain(sql, q.sql, false);
    const after = await explain(sql, q.sql, false);
    console.log(`\n${q.name}\n  before: ${before}\n  after:  ${after}`);
  }
} finally {
  await sql.end();
  await admin.unsafe(`drop database if exists ${name} with (force)`);
  await admin.end();
  await stopPgServer();
}
