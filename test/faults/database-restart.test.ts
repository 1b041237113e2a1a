import { rmSync } from 'node:fs';
import { join } from 'node:path';
import postgres from 'postgres';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { startEmbeddedPostgres, tempDatabaseDir, type EmbeddedDatabase } from '../../src/db/embedded.js';
import { migrateDatabase } from '../../src/db/migrate.js';
import { INBOUND_SECRET } from '../helpers/context.js';
import { makePdf, startProviderSite, type ProviderSite } from '../helpers/provider.js';
import { waitUntil } from '../helpers/receiver.js';
import { startServiceProcess, type ServiceProcess } from '../helpers/service-process.js';
import { powensHeaders, syncedPayload } from '../helpers/webhooks.js';

// Issue 9, fault suite: PostgreSQL (a server this test starts itself) stopped and started
// again under a steady stream of webhooks. During the outage webhooks get a 5xx and
// /health says 503; nothing is half-applied; the service recovers by itself, and the
// webhooks the aggregator retries then apply once.
const DOCS = 3;
let dir: string;
let pg: EmbeddedDatabase;
let service: ServiceProcess;
let site: ProviderSite;

beforeAll(async () => {
  dir = tempDatabaseDir('docrelay-restart-pg-');
  pg = await startEmbeddedPostgres(dir);
  await migrateDatabase(pg.url);
  site = await startProviderSite();
  const pdf = await makePdf(['A bill']);
  site.route('/bill.pdf', (_req, res) => res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf));
  service = await startServiceProcess(pg.url, 'all');
}, 120_000);

afterAll(async () => {
  await service?.kill();
  await site?.close();
  await pg?.stop().catch(() => {});
  rmSync(dir, { recursive: true, force: true });
});

const path = '/webhooks/powens/CONNECTION_SYNCED';
const body = (n: number) =>
  JSON.stringify(syncedPayload({
    idWebhookData: n,
    userId: 1,
    connectionId: n,
    subscriptions: [{ id: n, documents: Array.from({ length: DOCS }, (_, d) => ({ id: n * 10 + d, url: site.url('/bill.pdf') })) }],
  }));

async function send(n: number): Promise<{ n: number; status: number; answer?: string }> {
  const raw = body(n);
  try {
    const res = await fetch(service.baseUrl + path, { method: 'POST', headers: { ...powensHeaders(INBOUND_SECRET, path, raw), 'content-type': 'application/json' }, body: raw });
    const json = (await res.json()) as { status?: string };
    return { n, status: res.status, answer: json.status };
  } catch {
    return { n, status: 0 };
  }
}

const health = async () => (await fetch(`${service.baseUrl}/health`)).status;

it('webhooks during a database outage get a 5xx, none is half-applied, and the service recovers by itself', async () => {
  const answers: Awaited<ReturnType<typeof send>>[] = [];
  let next = 1;
  let phase: 'before' | 'down' | 'after' | 'done' = 'before';
  let sentWhileDown = 0;
  const load = Promise.all(Array.from({ length: 4 }, async () => {
    while (phase !== 'done') {
      const down = phase === 'down';
      answers.push(await send(next++));
      if (down) sentWhileDown++;
    }
  }));

  await waitUntil(async () => answers.filter((a) => a.status === 200).length >= 20, 60_000, '20 webhooks processed');
  await pg.stop();
  await waitUntil(async () => (await health().catch(() => { throw new Error(service.output().slice(-3000)); })) === 503, 30_000, '/health to say 503');
  phase = 'down';
  await waitUntil(async () => sentWhileDown >= 8, 30_000, 'webhooks sent during the outage');
  expect(await health()).toBe(503);

  pg = await startEmbeddedPostgres(dir);
  phase = 'after';
  await waitUntil(async () => (await health()) === 200, 60_000, '/health to recover');
  const afterRecovery = answers.length;
  await waitUntil(async () => answers.slice(afterRecovery).filter((a) => a.status === 200).length >= 10, 60_000, 'webhooks processed again');
  phase = 'done';
  await load;

  const refused = answers.filter((a) => a.status !== 200);
  expect(refused.length).toBeGreaterThan(0);
  // A refusal is a 5xx (or a dropped connection), never a 4xx that Powens would not retry.
  expect(refused.filter((a) => a.status > 0 && a.status < 500)).toEqual([]);
  expect(answers.filter((a) => a.status === 200).every((a) => a.answer === 'processed')).toBe(true);

  const db = postgres(pg.url, { max: 1, onnotice: () => {} });
  try {
    // Nothing half-applied: each webhook's connection has all its documents or none.
    const perConnection = await db<{ id: number; docs: number }[]>`
      select c.id::int as id, count(d.id)::int as docs from connections c
      left join subscriptions s on s.connection_id = c.id left join documents d on d.subscription_id = s.id group by c.id`;
    expect(perConnection.filter((c) => c.docs !== DOCS)).toEqual([]);
    const applied = new Set(perConnection.map((c) => c.id));
    for (const a of answers.filter((x) => x.status === 200)) expect(applied.has(a.n)).toBe(true);

    // Powens retries what was refused: each applies once (or was applied just before the cut).
    for (const a of refused) {
      const again = await send(a.n);
      expect(again.status).toBe(200);
      expect(again.answer).toBe(applied.has(a.n) ? 'duplicate' : 'processed');
    }
    const [{ n }] = await db<{ n: number }[]>`select count(*)::int as n from documents`;
    expect(n).toBe((next - 1) * DOCS);
    // The worker recovered too: every file is fetched. A download that failed during the
    // outage waits out graphile-worker's backoff (e^attempts s: up to e^5 ≈ 148 s after a
    // fifth failure), hence the long wait.
    await waitUntil(async () => {
      const [{ pending }] = await db<{ pending: number }[]>`select count(*)::int as pending from document_files where status <> 'ready'`;
      return pending === 0;
    }, 300_000, 'every file ready').catch(async (e) => {
      console.log(JSON.stringify(await db`select status, count(*)::int from document_files group by 1`));
      console.log(JSON.stringify(await db`select id, task_identifier, attempts, locked_by, locked_at, run_at, last_error from graphile_worker.jobs limit 10`));
      console.log(service.output().split('\n').filter((l) => !l.includes('"level":30')).slice(-40).join('\n').slice(-8000));
      throw e;
    });
  } finally {
    await db.end();
  }
}, 480_000);
