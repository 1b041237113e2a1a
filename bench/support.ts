import { serve } from '@hono/node-server';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { createApp } from '../src/app.js';
import { type Config, linkSignerOf, loadConfig } from '../src/config.js';
import { openDatabase, type Database } from '../src/db/client.js';
import { freePort, startEmbeddedPostgres, tempDatabaseDir } from '../src/db/embedded.js';
import { migrateDatabase } from '../src/db/migrate.js';
import type { Deps } from '../src/deps.js';
import { createNotifyServices } from '../src/notify/services.js';
import { createFileServices } from '../src/files/services.js';
import { powensSignature } from '../src/inbound/signature.js';
import { createLogger } from '../src/logger.js';
import { createMetrics } from '../src/ops/metrics.js';

/**
 * What every benchmark needs: a PostgreSQL server (DATABASE_URL / TEST_DATABASE_URL, else an
 * embedded one started once for the whole run), a fresh migrated database per benchmark, and
 * the real app listening on loopback.
 */
let server: Promise<{ url: string; stop?: () => Promise<void> }> | undefined;
export function pgServer() {
  server ??= (async () => {
    const url = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
    if (url) return { url };
    const pg = await startEmbeddedPostgres(tempDatabaseDir('docrelay-bench-pg-'));
    return { url: pg.url, stop: pg.stop };
  })();
  return server;
}

export async function stopPgServer() {
  if (server) await (await server).stop?.();
}

export interface BenchService {
  config: Config;
  deps: Deps;
  database: Database;
  databaseUrl: string;
  baseUrl: string;
  close(): Promise<void>;
}

export const BENCH_ADMIN = 'bench-admin-token-0123456789';
export const BENCH_INBOUND = 'bench-inbound-secret';

export async function startBenchService(env: Record<string, string> = {}): Promise<BenchService> {
  const { url } = await pgServer();
  const name = `docrelay_bench_${randomBytes(4).toString('hex')}`;
  const admin = postgres(withDatabase(url, 'postgres'), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name}`);
  const databaseUrl = withDatabase(url, name);
  await migrateDatabase(databaseUrl);
  const port = await freePort();
  const config = loadConfig({
    DATA_DIR: mkdtempSync(join(tmpdir(), 'docrelay-bench-')),
    ADMIN_TOKEN: BENCH_ADMIN,
    INBOUND_WEBHOOK_SECRET: BENCH_INBOUND,
    LINK_SECRET: 'bench-link-secret-0123456789',
    LOG_LEVEL: 'silent',
    DATABASE_URL: databaseUrl,
    PORT: String(port),
    ...env,
  });
  const database = openDatabase(databaseUrl, { max: 20 });
  const deps: Deps = { config, db: database.db, log: createLogger('silent'), links: linkSignerOf(config), metrics: createMetrics(), notify: createNotifyServices(config), files: createFileServices(config) };
  const http = serve({ fetch: createApp(deps).fetch, port, hostname: '127.0.0.1' });
  return {
    config,
    deps,
    database,
    databaseUrl,
    baseUrl: `http://127.0.0.1:${port}`,
    close: async () => {
      await new Promise<void>((r) => http.close(() => r()));
      await deps.files.close();
      await database.close();
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end();
    },
  };
}

function withDatabase(url: string, database: string) {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}

export function percentile(sorted: number[], p: number): number {
  return sorted[Math.min(sorted.length - 1, Math.floor((p / 100) * sorted.length))];
}

export const median = (xs: number[]) => percentile([...xs].sort((a, b) => a - b), 50);

/** Every figure reported in this run, by benchmark: `npm run bench` writes them to bench/results.json. */
export const results: Record<string, Record<string, string | number>> = {};

export function report(name: string, lines: Record<string, string | number>) {
  results[name] = lines;
  console.log(`\n== ${name}`);
  for (const [k, v] of Object.entries(lines)) console.log(`  ${k}: ${v}`);
}

/** Run `fn` n times and return the median of what it measured (runs are interleaved by the caller). */
export async function medianOf<T extends Record<string, number>>(n: number, fn: (run: number) => Promise<T>): Promise<T & { runs: T[] }> {
  const runs: T[] = [];
  for (let i = 0; i < n; i++) runs.push(await fn(i));
  const out = {} as Record<string, number>;
  for (const k of Object.keys(runs[0])) out[k] = median(runs.map((r) => r[k]));
  return { ...(out as T), runs };
}

/**
 * Peak resident set size of this process while `fn` runs, sampled every 5 ms, as growth over
 * `start` (default: the RSS when it starts).
 */
export async function peakRssGrowth<T>(fn: () => Promise<T>, start = process.memoryUsage().rss): Promise<{ value: T; mib: number }> {
  let peak = start;
  const timer = setInterval(() => { peak = Math.max(peak, process.memoryUsage().rss); }, 5);
  try {
    const value = await fn();
    peak = Math.max(peak, process.memoryUsage().rss);
    return { value, mib: (peak - start) / 2 ** 20 };
  } finally {
    clearInterval(timer);
  }
}

/** A CONNECTION_SYNCED as a sender has it ready to go: the bytes of its body and its signature headers. */
export interface SignedSync {
  raw: Uint8Array<ArrayBuffer>;
  headers: Record<string, string>;
}

/**
 * Serialise and sign a CONNECTION_SYNCED as Powens signs it (the sender's side of the work).
 * The body goes as the very bytes that were signed: given a string, fetch would encode it
 * to UTF-8 again inside the timed window (~10 ms for a 10,000-document body).
 */
export function signSync(body: unknown): SignedSync {
  const bytes = Buffer.from(JSON.stringify(body));
  const date = new Date().toISOString();
  const signature = powensSignature(BENCH_INBOUND, 'POST', SYNC_PATH, date, bytes);
  const raw = new Uint8Array(bytes); // what fetch's types take
  return { raw, headers: { 'content-type': 'application/json', 'bi-signature-date': date, 'bi-signature': signature } };
}

const SYNC_PATH = '/webhooks/powens/CONNECTION_SYNCED';

/** POST a CONNECTION_SYNCED, signed as Powens signs it, and insist on `processed`. Returns the moment its answer came (performance.now()). */
export const postSync = (svc: BenchService, body: unknown): Promise<number> => postSigned(svc, signSync(body));

/** postSync of a body signSync made beforehand. */
export async function postSigned(svc: BenchService, signed: SignedSync): Promise<number> {
  const res = await fetch(svc.baseUrl + SYNC_PATH, { method: 'POST', headers: signed.headers, body: signed.raw });
  const out = (await res.json()) as { status: string };
  if (res.status !== 200 || out.status !== 'processed') throw new Error(`unexpected answer ${res.status} ${JSON.stringify(out)}`);
  return performance.now();
}

export const ratio = (a: number, b: number) => (a / b).toFixed(2);
