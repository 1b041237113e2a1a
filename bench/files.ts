import { spawn } from 'node:child_process';
import { randomBytes } from 'node:crypto';
import { once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import type { ServerResponse } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import type { JobHelpers } from 'graphile-worker';
import { request } from 'undici';
import { linkSignerOf, loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/client.js';
import { createNotifyServices } from '../src/notify/services.js';
import { createFetchDispatcher, defaultFetchLimits, download } from '../src/files/fetch.js';
import { createFileServices } from '../src/files/services.js';
import { fetchDocumentFile } from '../src/files/tasks.js';
import { enqueueFileFetches } from '../src/jobs/files.js';
import { createLogger } from '../src/logger.js';
import { startWorker } from '../src/worker.js';
import { makePdf, startProviderSite, type ProviderSite } from '../test/helpers/provider.js';
import { report, startBenchService, stopPgServer, type BenchService } from './support.js';
import { createMetrics } from '../src/ops/metrics.js';

/**
 * Issue 3 benchmarks:
 * - files fetched and stored per second through the real worker (download, sniff, pdf.js
 *   thumbnail, blobs in PostgreSQL), 100 KB PDFs from a loopback site; reference: the same
 *   downloads with a bare undici client at the same concurrency, nothing else done;
 * - peak RSS growth while downloading a file of FILE_MAX_BYTES against a small one and one
 *   four times larger, for the downloader alone and for the whole job (stored in
 *   PostgreSQL): it must not follow the size.
 */
const FILES = 200;
const FILE_BYTES = 100 * 1024;

async function seedDocuments(svc: BenchService, first: number, urls: string[]) {
  const sql = svc.database.sql;
  await sql`insert into users (id) values (1) on conflict do nothing`;
  await sql`insert into connections (id, user_id) values (1, 1) on conflict do nothing`;
  await sql`insert into subscriptions (id, connection_id, user_id) values (1, 1, 1) on conflict do nothing`;
  const rows = urls.map((url, i) => ({ id: first + i, subscription_id: 1, user_id: 1, name: `Bill ${i}`, source_url: url }));
  await sql`insert into documents ${sql(rows)}`;
  await sql`insert into document_files (document_id, status) select id, 'pending' from documents where id between ${first} and ${first + urls.length - 1}`;
  return rows.map((r) => r.id);
}

async function throughput(svc: BenchService, site: ProviderSite) {
  // Distinct bytes per file, so that nothing is deduplicated away.
  const pdfs = await Promise.all(Array.from({ length: FILES }, (_, i) => makePdf([`Bill number ${i}`], { padTo: FILE_BYTES })));
  pdfs.forEach((pdf, i) => site.route(`/t/${i}.pdf`, (_req, res) => res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf)));
  const urls = pdfs.map((_, i) => site.url(`/t/${i}.pdf`));
  const concurrency = svc.config.workerConcurrency;

  // Reference: bare downloads, same files, same concurrency, bodies thrown away.
  let next = 0;
  const t0 = performance.now();
  await Promise.all(
    Array.from({ length: concurrency }, async () => {
      while (next < FILES) {
        const res = await request(urls[next++]);
        await res.body.arrayBuffer();
      }
    }),
  );
  const bareSeconds = (performance.now() - t0) / 1000;

  const ids = await seedDocuments(svc, 100_000, urls);
  await svc.deps.db.transaction((tx) => enqueueFileFetches(tx, ids));
  const t1 = performance.now();
  const worker = await startWorker(svc.deps, svc.databaseUrl, { pollInterval: 50 });
  try {
    for (;;) {
      const [{ pending }] = await svc.database.sql<{ pending: number }[]>`
        select count(*)::int as pending from document_files where document_id between 100000 and 199999 and status = 'pending'`;
      if (pending === 0) break;
      await new Promise((r) => setTimeout(r, 20));
    }
  } finally {
    await worker.stop();
  }
  const jobSeconds = (performance.now() - t1) / 1000;
  const [{ ready }] = await svc.database.sql<{ ready: number }[]>`
    select count(*)::int as ready from document_files where document_id between 100000 and 199999 and status = 'ready' and thumbnail_sha256 is not null`;
  report(`files: fetch_document_files jobs, ${FILES} PDFs of 100 KB from a loopback site (concurrency ${concurrency})`, {
    'stored with thumbnail': `${ready}/${FILES}`,
    'files/s (download + sniff + thumbnail + store)': (FILES / jobSeconds).toFixed(1),
    'reference: bare undici downloads/s': (FILES / bareSeconds).toFixed(1),
  });
}

/**
 * Peak RSS growth of one download or one job, each in a fresh Node process (this file run
 * with --probe), so that earlier runs' heap cannot hide or inflate it. Growth is measured
 * from after a warm-up download; sampled every 2 ms.
 */
async function probe(args: string[], nodeFlags: string[] = []): Promise<number> {
  const child = spawn(process.execPath, [...nodeFlags, '--import', 'tsx', fileURLToPath(import.meta.url), '--probe', ...args], {
    stdio: ['ignore', 'pipe', 'inherit'],
  });
  let out = '';
  child.stdout.on('data', (d) => (out += d));
  const [code] = (await once(child, 'exit')) as [number];
  if (code !== 0) throw new Error(`probe ${args.join(' ')} exited with ${code}`);
  return (JSON.parse(out.trim().split('\n').at(-1)!) as { growth: number }).growth;
}

async function runProbe(mode: string, url: string, maxBytes: number, databaseUrl?: string, documentId?: number) {
  const limits = defaultFetchLimits(maxBytes, true);
  const dispatcher = createFetchDispatcher(limits);
  const dir = mkdtempSync(join(tmpdir(), 'docrelay-probe-'));
  let op: () => Promise<unknown>;
  let close = async () => {};
  if (mode === 'download') {
    op = () => download(url, join(dir, 'f'), limits, dispatcher);
  } else {
    const config = loadConfig({
      DATABASE_URL: databaseUrl,
      DATA_DIR: dir,
      ADMIN_TOKEN: 'probe-admin-token-0123456789',
      LINK_SECRET: 'probe-link-secret-0123456789',
      FETCH_ALLOW_PRIVATE_NETWORKS: '1',
      FILE_MAX_BYTES: String(maxBytes),
      LOG_LEVEL: 'silent',
    });
    const database = openDatabase(databaseUrl!);
    const deps = { config, db: database.db, log: createLogger('silent'), links: linkSignerOf(config), metrics: createMetrics(), notify: createNotifyServices(config), files: createFileServices(config) };
    const handler = fetchDocumentFile(deps);
    op = () => handler({ documentId: documentId! }, { job: { attempts: 1, max_attempts: 25 } } as unknown as JobHelpers);
    close = async () => {
      await deps.files.close();
      await database.close();
    };
  }
  await download(url.replace(/\/m\/\d+$/, '/m/warm'), join(dir, 'w'), limits, dispatcher); // load code, open pools
  const before = process.memoryUsage().rss;
  let peak = before;
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 2);
  await op();
  clearInterval(timer);
  peak = Math.max(peak, process.memoryUsage().rss);
  await close();
  await dispatcher.close();
  rmSync(dir, { recursive: true, force: true });
  console.log(JSON.stringify({ growth: peak - before }));
}

async function memory(svc: BenchService, site: ProviderSite) {
  const max = svc.config.fileMaxBytes;
  // The site writes one random 64 KiB block again and again: its own memory stays flat.
  const serveBytes = (size: number, block = randomBytes(64 * 1024)) => async (_req: unknown, res: ServerResponse) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', 'content-length': String(size) });
    for (let sent = 0; sent < size; sent += block.length) {
      const part = block.subarray(0, Math.min(block.length, size - sent));
      if (!res.write(part)) await new Promise((r) => res.once('drain', r));
    }
    res.end();
  };
  const sizes = { small: FILE_BYTES, max, fourMax: 4 * max };
  site.route('/m/warm', serveBytes(FILE_BYTES));
  for (const size of Object.values(sizes)) site.route(`/m/${size}`, serveBytes(size));
  const urls = Object.values(sizes).map((size) => site.url(`/m/${size}`));
  // Other bytes for the capped run, or its blob would already be stored (deduplicated).
  site.route('/m/other', serveBytes(sizes.fourMax));
  const docs = await seedDocuments(svc, 200_000, [...urls, site.url('/m/other')]);

  const mib = (n: number) => `${(n / 1048576).toFixed(1)} MiB`;
  const lines: Record<string, string> = {};
  for (const [i, [name, size]] of Object.entries(sizes).entries()) {
    const label = `${name === 'small' ? 'small file' : name === 'max' ? 'FILE_MAX_BYTES file' : '4 × FILE_MAX_BYTES file'} (${mib(size)})`;
    lines[`download only, ${label}`] = mib(await probe(['download', site.url(`/m/${size}`), String(4 * max)]));
    lines[`whole job (download + sniff + store in PostgreSQL), ${label}`] = mib(
      await probe(['job', site.url(`/m/${size}`), String(4 * max), svc.databaseUrl, String(docs[i])]),
    );
  }
  // Much of the growth above is garbage awaiting V8's next major GC (socket chunks, and the
  // hex text postgres.js makes of each bytea chunk). Capped at 128 MiB of heap, a job four
  // times FILE_MAX_BYTES still completes: nothing holds the whole file.
  const capped = ['--max-old-space-size=128'];
  lines['whole job, 4 × FILE_MAX_BYTES file, V8 old space capped at 128 MiB'] = mib(
    await probe(['job', site.url('/m/other'), String(4 * max), svc.databaseUrl, String(docs[3])], capped),
  );
  report(`files: peak RSS growth of one download / one job, each in a fresh process (FILE_MAX_BYTES = ${mib(max)})`, lines);
}

export async function benchFiles() {
  const svc = await startBenchService({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', FILE_MAX_BYTES: String(25 * 1024 * 1024) });
  const site = await startProviderSite();
  try {
    await memory(svc, site); // first, before the throughput run fills the heap
    await throughput(svc, site);
  } finally {
    await site.close();
    await svc.close();
  }
}

export default benchFiles;

if (process.argv[2] === '--probe') {
  const [mode, url, max, databaseUrl, documentId] = process.argv.slice(3);
  await runProbe(mode, url, Number(max), databaseUrl, Number(documentId));
  process.exit(0);
} else if (import.meta.url === `file://${process.argv[1]}`) {
  await benchFiles();
  await stopPgServer();
}
