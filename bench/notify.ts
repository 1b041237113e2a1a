import { spawn } from 'node:child_process';
import { Logger, run } from 'graphile-worker';
import { sql } from 'drizzle-orm';
import { sqlArray } from '../src/db/arrays.js';
import { recordEvents } from '../src/events/record.js';
import { startWorker } from '../src/worker.js';
import { report, startBenchService, stopPgServer } from './support.js';

/**
 * Jobs: customer notifications delivered per second to a loopback receiver
 * (signed, one HTTP POST each, attempt logged), as a ratio to graphile-worker's own no-op
 * job rate on the same database, same concurrency, in the same run. Target: ≥ 0.5.
 *
 * Both sides start with their jobs already queued and are timed from the worker's start to
 * the last job done, so queueing cost is left out of both alike.
 */
const N = Number(process.env.BENCH_NOTIFY_N ?? 3000);

/** A 204-answering receiver on 127.0.0.1 that prints its port and counts POSTs (GET /count). */
const RECEIVER = `
const http = require('node:http');
let n = 0;
const s = http.createServer((req, res) => {
  req.resume();
  req.on('end', () => {
    if (req.method === 'GET') return res.end(String(n));
    n++;
    res.writeHead(204).end();
  });
});
s.keepAliveTimeout = 60000;
s.listen(0, '127.0.0.1', () => console.log(s.address().port));
`;

async function drain(count: () => Promise<number>, start: () => Promise<{ stop(): Promise<void> }>) {
  const t = performance.now();
  const w = await start();
  while ((await count()) > 0) await new Promise((r) => setTimeout(r, 10));
  const s = (performance.now() - t) / 1000;
  await w.stop();
  return s;
}

export async function benchNotify() {
  const svc = await startBenchService({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', WORKER_CONCURRENCY: process.env.WORKER_CONCURRENCY ?? '4' });
  // The customer's receiver runs in a process of its own, as it would in life: its HTTP
  // parsing is not charged to the worker's event loop.
  const receiver = spawn(process.execPath, ['-e', RECEIVER], { stdio: ['ignore', 'pipe', 'inherit'] });
  const port = await new Promise<number>((resolve) => receiver.stdout!.once('data', (d) => resolve(Number(String(d).trim()))));
  const received = async () => Number(await (await fetch(`http://127.0.0.1:${port}/count`)).text());
  let noopAdded = 0;
  let eventsAdded = 0;
  try {
    const db = svc.deps.db;
    const concurrency = svc.config.workerConcurrency;
    // One count per poll for either side: the notification side's two tasks are counted in
    // one query (two queries every 10 ms charged its event loop with polling the reference
    // did not pay).
    const jobsLeft = async (...tasks: string[]) => {
      const [r] = await db.execute<{ n: number }>(sql`select count(*)::int as n from graphile_worker.jobs where task_identifier = any(${sqlArray(tasks, 'text')})`);
      return r.n;
    };

    // Reference: graphile-worker running no-op jobs.
    await db.execute(sql`select graphile_worker.add_job('noop', '{}'::json) from generate_series(1, ${N})`);
    const noopS = await drain(
      () => jobsLeft('noop'),
      async () => {
        const runner = await run({ connectionString: svc.databaseUrl, concurrency, pollInterval: 1000, noHandleSignals: true, taskList: { noop: async () => {} }, logger: new Logger(() => () => {}) });
        return { stop: async () => { await runner.stop(); } };
      },
    );

    // Notifications: one endpoint, N events recorded (one message and one job each).
    const res = await fetch(`${svc.baseUrl}/webhook-endpoints`, {
      method: 'POST',
      headers: { authorization: `Bearer ${svc.config.adminToken}`, 'content-type': 'application/json' },
      body: JSON.stringify({ url: `http://127.0.0.1:${port}/hook` }),
    });
    if (res.status !== 201) throw new Error(`endpoint: ${res.status} ${await res.text()}`);
    await db.execute(sql`insert into users (id) values (1)`);
    await db.transaction(async (tx) => {
      await recordEvents(
        tx,
        Array.from({ length: N }, (_, i) => ({
          type: 'subscription.created' as const,
          dedupeKey: `bench:${i}`,
          userId: 1,
          connectionId: 1,
          data: { subscription: { id: i, id_connection: 1, id_user: 1, number: `N${i}`, label: 'Mobile', subscriber: 'Jane Doe', validity: null, renewdate: null, last_update: null, deleted: null } },
        })),
      );
    });
    const notifyS = await drain(() => jobsLeft('deliver_message', 'deliver_messages'), () => startWorker(svc.deps, svc.databaseUrl, { pollInterval: 1000 }));
    const [{ ok }] = await db.execute<{ ok: number }>(sql`select count(*)::int as ok from messages where status = 'succeeded'`);
    const got = await received();
    if (got < N || ok !== N) throw new Error(`only ${got} received, ${ok} succeeded of ${N}`);

    const noopRate = N / noopS;
    const notifyRate = N / notifyS;
    report(`jobs: ${N} notifications to a loopback receiver vs ${N} graphile-worker no-op jobs (concurrency ${concurrency}), all queued first`, {
      'notifications delivered / s': notifyRate.toFixed(0),
      'no-op jobs / s (reference)': noopRate.toFixed(0),
      'ratio (target ≥ 0.5)': (notifyRate / noopRate).toFixed(2),
    });

    // Streaming, as in life: the worker runs while 4 producers record one event per
    // transaction (as announce_document does for each document), against no-op jobs added
    // one per transaction by 4 producers while graphile-worker runs them.
    const S = Math.min(N, 2000);
    // When the producers finished, from the worker's start: the figure is the later of that
    // and the drain, so this says which side held it back.
    let producedAt = 0;
    const produce = async (one: (i: number) => Promise<unknown>) => {
      const t = performance.now();
      let next = 0;
      await Promise.all(Array.from({ length: 4 }, async () => {
        while (next < S) await one(next++);
      }));
      producedAt = (performance.now() - t) / 1000;
    };
    const noopStreamS = await drain(
      async () => (noopAdded < S ? 1 : jobsLeft('noop')),
      async () => {
        const runner = await run({ connectionString: svc.databaseUrl, concurrency, pollInterval: 1000, noHandleSignals: true, taskList: { noop: async () => {} }, logger: new Logger(() => () => {}) });
        void produce(async () => {
          await db.execute(sql`select graphile_worker.add_job('noop', '{}'::json)`);
          noopAdded++;
        });
        return { stop: async () => { await runner.stop(); } };
      },
    );
    const noopProducedS = producedAt;
    const before = await received();
    const notifyStreamS = await drain(
      async () => (eventsAdded < S ? 1 : jobsLeft('deliver_message', 'deliver_messages')),
      async () => {
        const w = await startWorker(svc.deps, svc.databaseUrl, { pollInterval: 1000 });
        void produce(async (i) => {
          await db.transaction((tx) => recordEvents(tx, [{ type: 'subscription.created', dedupeKey: `stream:${i}`, userId: 1, connectionId: 1, data: { subscription: { id: i } } }]));
          eventsAdded++;
        });
        return w;
      },
    );
    const [{ stuck }] = await db.execute<{ stuck: number }>(sql`select count(*)::int as stuck from messages where status <> 'succeeded'`);
    if ((await received()) - before < S || stuck > 0) throw new Error(`streaming: ${stuck} messages not delivered`);
    report(`jobs, streaming: ${S} events recorded one per transaction while the worker runs vs ${S} no-op jobs added the same way`, {
      'notifications delivered / s': (S / notifyStreamS).toFixed(0),
      'no-op jobs / s (reference)': (S / noopStreamS).toFixed(0),
      'ratio': (noopStreamS / notifyStreamS).toFixed(2),
      'producers done / drained (s)': `${producedAt.toFixed(2)} / ${notifyStreamS.toFixed(2)}`,
      'reference producers done / drained (s)': `${noopProducedS.toFixed(2)} / ${noopStreamS.toFixed(2)}`,
    });
    return { notifyRate, noopRate, ratio: notifyRate / noopRate };
  } finally {
    receiver.kill();
    await svc.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchNotify();
  await stopPgServer();
}
