import { spawn, type ChildProcess } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fileURLToPath } from 'node:url';
import { startWorker } from '../src/worker.js';
import { makePdf, startProviderSite, type ProviderHandler } from '../test/helpers/provider.js';
import { BENCH_INBOUND, percentile, postSync, report, startBenchService, stopPgServer, type BenchService } from './support.js';

/**
 * End to end, the figure users feel: two 20-document syncs a second for 30 s (40 new bills
 * a second), PDFs from a loopback provider site, one loopback receiver subscribed to
 * `document.created`; time from each webhook's `200` to the receiver getting each of its
 * documents. Then the same while a backfill (BENCH_BACKFILL documents, default 1,000,000,
 * in 10,000-document syncs) is being worked off. Targets: p50 ≤ 2 s, p99 ≤ 10 s idle;
 * p99 ≤ 30 s during the backfill; none missing.
 */
const RATE_SYNCS = 2;
const DOCS_PER_SYNC = 20;
const SECONDS = Number(process.env.BENCH_E2E_SECONDS ?? 30);
const BACKFILL = Number(process.env.BENCH_BACKFILL ?? 1_000_000);
const WAIT_AFTER_MS = 60_000;
/**
 * BENCH_WORKERS=N runs the worker as N processes of their own (ROLE=worker, as deployed
 * beside the web process), for "two worker processes against one"; unset or 0, it runs in
 * the benchmark's process, as before.
 */
const WORKERS = Number(process.env.BENCH_WORKERS ?? 0);

export function sync(connectionId: number, docIds: number[], url: string) {
  return {
    id_webhook_data: connectionId,
    user: { id: 1 },
    connection: {
      id: connectionId, id_user: 1, id_connector: 40, state: null, error_message: null,
      last_update: new Date().toISOString(), next_try: null, active: true,
      subscriptions: [{
        id: connectionId, number: `N${connectionId}`, label: 'Contract', subscriber: 'Mr John Doe', validity: null, renewdate: null,
        documents: docIds.map((id) => ({
          id, name: `Bill ${id}`, type: 'bill', date: '2026-11-01', duedate: null, number: String(id), issuer: 'Acme',
          total_amount: 42.5 + (id % 1000), untaxed_amount: 35.42, vat: 7.08, currency: 'EUR', url: `${url}?doc=${id}`, has_file_on_website: true,
        })),
      }],
    },
  };
}

/**
 * The provider's `/bill.pdf?doc=<id>`: each bill its own bytes (the PDF and a comment after
 * %%EOF naming it). One file for all would make every bill but the first a repeat of it, and
 * repeats are not announced (README, "A bill is announced once").
 */
export const billFiles = (pdf: Buffer): ProviderHandler => (req, res) =>
  void res.writeHead(200, { 'content-type': 'application/pdf' }).end(Buffer.concat([pdf, Buffer.from(`\n% ${req.url}\n`)]));

/** A receiver that notes when each document.created arrives, by document id. */
export async function startArrivals() {
  const arrived = new Map<number, number>();
  const server = createServer((req, res) => {
    const chunks: Buffer[] = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const at = performance.now();
      try {
        const msg = JSON.parse(Buffer.concat(chunks).toString('utf8')) as { type: string; data: { document?: { id: number } } };
        if (msg.type === 'document.created' && msg.data.document) {
          if (!arrived.has(msg.data.document.id)) arrived.set(msg.data.document.id, at);
        }
      } catch { /* not ours */ }
      res.writeHead(204).end();
    });
  });
  server.keepAliveTimeout = 60_000;
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, arrived, close: () => new Promise<void>((r) => { server.closeAllConnections(); server.close(() => r()); }) };
}

/** Sends RATE_SYNCS syncs a second for SECONDS; returns each fresh document's 200 time. */
async function stream(svc: BenchService, firstConnection: number, url: string) {
  const sentAt = new Map<number, number>();
  const t0 = performance.now();
  const pending: Promise<void>[] = [];
  for (let k = 0; k < SECONDS * RATE_SYNCS; k++) {
    const due = t0 + (k * 1000) / RATE_SYNCS;
    const wait = due - performance.now();
    if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    const conn = firstConnection + k;
    const ids = Array.from({ length: DOCS_PER_SYNC }, (_, i) => conn * 100 + i);
    pending.push(postSync(svc, sync(conn, ids, url)).then((at) => { for (const id of ids) sentAt.set(id, at); }));
  }
  await Promise.all(pending);
  return sentAt;
}

async function measure(name: string, svc: BenchService, arrivals: Awaited<ReturnType<typeof startArrivals>>, sentAt: Map<number, number>, target: string) {
  const until = performance.now() + WAIT_AFTER_MS;
  while (performance.now() < until && [...sentAt.keys()].some((id) => !arrivals.arrived.has(id))) await new Promise((r) => setTimeout(r, 100));
  const lat = [...sentAt].filter(([id]) => arrivals.arrived.has(id)).map(([id, at]) => (arrivals.arrived.get(id)! - at) / 1000).sort((a, b) => a - b);
  // Where the time went, by step: the file settled (document_files.updated_at) and the
  // document.created event recorded (events.created_at), from the webhook's 200.
  const steps = await svc.database.sql<{ id: number; file: number; event: number | null }[]>`
    select f.document_id::float8 as id, extract(epoch from f.updated_at) * 1000 as file, extract(epoch from e.created_at) * 1000 as event
    from document_files f left join events e on e.dedupe_key = 'document.created:' || f.document_id
    where f.document_id = any(${svc.database.sql.array([...sentAt.keys()])}::bigint[])`;
  const since = (at: number | null, id: number) => (at === null ? [] : [(at - (performance.timeOrigin + sentAt.get(Number(id))!)) / 1000]);
  const fileLat = steps.flatMap((r) => since(Number(r.file), r.id)).sort((a, b) => a - b);
  const eventLat = steps.flatMap((r) => since(r.event === null ? null : Number(r.event), r.id)).sort((a, b) => a - b);
  const p = (xs: number[], q: number) => (xs.length ? percentile(xs, q).toFixed(2) : 'n/a');
  report(name, {
    'bills sent': sentAt.size,
    'missing after 60 s more': sentAt.size - lat.length,
    'p50 s': p(lat, 50),
    'p99 s': p(lat, 99),
    'file settled p50/p99 s': `${p(fileLat, 50)} / ${p(fileLat, 99)}`,
    'document.created recorded p50/p99 s': `${p(eventLat, 50)} / ${p(eventLat, 99)}`,
    target,
  });
}

/**
 * What the end-to-end and soak benchmarks share: the service with its worker, a loopback
 * provider site serving each bill its own PDF at `url`, and a receiver subscribed to
 * `document.created` noting when each document arrives.
 */
export async function startDeliveryRig() {
  const svc = await startBenchService({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  const site = await startProviderSite();
  const arrivals = await startArrivals();
  site.route('/bill.pdf', billFiles(await makePdf(['Bill'], { padTo: 20 * 1024 })));
  const worker = WORKERS > 0 ? await startWorkerProcesses(svc, WORKERS) : await startWorker(svc.deps, svc.databaseUrl, { pollInterval: 200 });
  const close = async () => {
    await worker.stop();
    await arrivals.close();
    await site.close();
    await svc.close();
  };
  const res = await fetch(`${svc.baseUrl}/webhook-endpoints`, {
    method: 'POST',
    headers: { authorization: `Bearer ${svc.config.adminToken}`, 'content-type': 'application/json' },
    body: JSON.stringify({ url: arrivals.url, events: ['document.created'] }),
  });
  if (res.status !== 201) {
    await close();
    throw new Error(`endpoint: ${res.status} ${await res.text()}`);
  }
  return { svc, arrivals, url: site.url('/bill.pdf'), close };
}

/** N worker processes (test/helpers/worker-child.ts: the real worker, its own pools and connections) on the service's database. */
async function startWorkerProcesses(svc: BenchService, n: number) {
  const script = fileURLToPath(new URL('../test/helpers/worker-child.ts', import.meta.url));
  const children: ChildProcess[] = [];
  const stop = async () => {
    await Promise.all(children.map((c) => new Promise<void>((resolve) => {
      if (c.exitCode !== null || c.signalCode !== null) return resolve();
      c.once('exit', () => resolve());
      c.kill('SIGKILL');
    })));
  };
  try {
    for (let i = 0; i < n; i++) {
      const child = spawn(process.execPath, ['--import', 'tsx', script], {
        env: {
          ...process.env,
          ROLE: 'worker',
          DATABASE_URL: svc.databaseUrl,
          ADMIN_TOKEN: svc.config.adminToken,
          LINK_SECRET: 'bench-link-secret-0123456789',
          INBOUND_WEBHOOK_SECRET: BENCH_INBOUND,
          DATA_DIR: svc.config.dataDir,
          FETCH_ALLOW_PRIVATE_NETWORKS: '1',
          LOG_LEVEL: 'silent',
        },
        stdio: ['ignore', 'pipe', 'inherit'],
      });
      children.push(child);
      await new Promise<void>((resolve, reject) => {
        child.stdout!.on('data', (b: Buffer) => b.toString().includes('ready') && resolve());
        child.once('exit', (code) => reject(new Error(`worker process exited (${code}) before it was ready`)));
      });
    }
  } catch (err) {
    await stop();
    throw err;
  }
  return { stop };
}

export async function benchEndToEnd() {
  const { svc, arrivals, url, close } = await startDeliveryRig();
  try {
    const procs = WORKERS > 0 ? `, ${WORKERS} worker process${WORKERS > 1 ? 'es' : ''}` : '';
    await measure(`end to end${procs}, idle: ${RATE_SYNCS} syncs of ${DOCS_PER_SYNC} bills a second for ${SECONDS} s, webhook 200 → receiver`, svc, arrivals, await stream(svc, 1_000, url), 'p50 ≤ 2 s, p99 ≤ 10 s, none missing');

    if (BACKFILL > 0) {
      // The backfill: 10,000-document syncs of connections 10,000,000+, bills too (they are announced as well).
      const t = performance.now();
      for (let b = 0; b < BACKFILL / 10_000; b++) {
        const conn = 10_000_000 + b;
        const ids = Array.from({ length: 10_000 }, (_, i) => conn * 100_000 + i);
        await postSync(svc, sync(conn, ids, url));
      }
      const ingestS = (performance.now() - t) / 1000;
      const [{ queued }] = await svc.database.sql<{ queued: number }[]>`select count(*)::int as queued from graphile_worker.jobs`;
      await measure(`end to end${procs} during a backfill of ${BACKFILL.toLocaleString('en')} documents (ingested in ${ingestS.toFixed(0)} s, ${queued} jobs queued then)`, svc, arrivals, await stream(svc, 5_000, url), 'p99 ≤ 30 s, none missing');
    }
  } finally {
    await close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchEndToEnd();
  await stopPgServer();
}
