import { powensSignature } from '../src/inbound/signature.js';
import { BENCH_INBOUND, median, report, startBenchService, stopPgServer, type BenchService } from './support.js';

/**
 * CONTRACT.md §9 ingest and 10,000-document sync: CONNECTION_SYNCED webhooks per second
 * (5 subscriptions × 20 documents) through HTTP, and the time of one 10,000-document sync
 * as a ratio to COPY of the same rows into PostgreSQL.
 */
function payload(n: number, subs: number, docsPerSub: number) {
  const base = n * 1_000_000;
  return {
    id_webhook_data: n,
    user: { id: 1 },
    connection: {
      id: n, id_user: 1, id_connector: 40, state: null, error_message: null,
      last_update: '2026-11-20 09:00:00', next_try: null, active: true,
      subscriptions: Array.from({ length: subs }, (_, s) => ({
        id: base + s * 100_000, number: `N${s}`, label: `Contract ${s}`, subscriber: 'Mr John Doe', validity: null, renewdate: null,
        documents: Array.from({ length: docsPerSub }, (_, d) => ({
          id: base + s * 100_000 + d + 1, name: `Bill ${d}`, type: 'bill', date: '2026-11-01 00:00:00', duedate: null,
          number: String(d), issuer: 'Acme', total_amount: 42.5, untaxed_amount: 35.42, vat: 7.08,
          currency: { id: 'EUR', symbol: '€' }, url: `https://provider.example/${d}.pdf`, has_file_on_website: true,
        })),
      })),
    },
  };
}

async function send(svc: BenchService, body: unknown): Promise<number> {
  const path = '/webhooks/powens/CONNECTION_SYNCED';
  const raw = JSON.stringify(body);
  const date = new Date().toISOString();
  const t = performance.now();
  const res = await fetch(svc.baseUrl + path, {
    method: 'POST',
    headers: { 'content-type': 'application/json', 'bi-signature-date': date, 'bi-signature': powensSignature(BENCH_INBOUND, 'POST', path, date, Buffer.from(raw)) },
    body: raw,
  });
  const out = (await res.json()) as { status: string };
  if (res.status !== 200 || out.status !== 'processed') throw new Error(`unexpected answer ${res.status} ${JSON.stringify(out)}`);
  return performance.now() - t;
}

export async function benchIngest() {
  const svc = await startBenchService();
  try {
    for (let i = 1; i <= 20; i++) await send(svc, payload(i, 5, 20)); // warm-up
    const total = 400;
    const concurrency = 4;
    let next = 100;
    const latencies: number[] = [];
    const t0 = performance.now();
    await Promise.all(
      Array.from({ length: concurrency }, async () => {
        while (next < 100 + total) latencies.push(await send(svc, payload(next++, 5, 20)));
      }),
    );
    const seconds = (performance.now() - t0) / 1000;
    report('ingest: CONNECTION_SYNCED (5 subscriptions × 20 documents) through HTTP', {
      webhooks: total,
      concurrency,
      'webhooks/s': (total / seconds).toFixed(1),
      'documents/s': ((total * 100) / seconds).toFixed(0),
      'latency p50 ms': median(latencies).toFixed(1),
    });
  } finally {
    await svc.close();
  }
}

export async function benchLargeSync() {
  const svc = await startBenchService();
  try {
    const runs: { sync: number; copy: number }[] = [];
    for (let r = 0; r < 3; r++) {
      const body = payload(10 + r, 10, 1000);
      const sync = await send(svc, body);
      // The reference: COPY of the same 10,000 rows into a table shaped like documents.
      const sql = svc.database.sql;
      await sql`drop table if exists copy_ref`;
      // Same columns and indexes as documents (LIKE copies no foreign keys).
      await sql`create table copy_ref (like documents including defaults including indexes)`;
      const rows = body.connection.subscriptions.flatMap((s) =>
        s.documents.map((d) => [d.id, s.id, 1, d.name, d.type, '2026-11-01', '\\N', d.number, d.issuer, d.total_amount, d.untaxed_amount, d.vat, 'EUR', 'f', 't', d.url].join('\t')),
      );
      const t = performance.now();
      const stream = await sql`copy copy_ref (id, subscription_id, user_id, name, type, date, duedate, number, issuer, total_amount, untaxed_amount, vat, currency, income, has_file_on_website, source_url) from stdin`.writable();
      await new Promise<void>((resolve, reject) => {
        stream.on('error', reject);
        stream.on('finish', resolve);
        stream.end(rows.join('\n') + '\n');
      });
      runs.push({ sync, copy: performance.now() - t });
    }
    const sync = median(runs.map((r) => r.sync));
    const copy = median(runs.map((r) => r.copy));
    report('10,000-document sync (10 × 1,000), median of 3', {
      'sync to processed (HTTP, diff, 10,000 file jobs) ms': sync.toFixed(0),
      'COPY of the same rows ms': copy.toFixed(0),
      'ratio sync / COPY': (sync / copy).toFixed(1),
    });
  } finally {
    await svc.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchIngest();
  await benchLargeSync();
  await stopPgServer();
}
