import { createHash } from 'node:crypto';
import { performance } from 'node:perf_hooks';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { freePort } from '../src/db/embedded.js';
import { startLiveness } from '../src/jobs/liveness.js';
import { createLogger } from '../src/logger.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint } from './helpers/notify.js';
import { makePdf, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { startServiceProcess, type ServiceProcess } from './helpers/service-process.js';
import { syncedPayload } from './helpers/webhooks.js';

// Issue 13, worker hygiene: the jobs of a worker process that died are released within
// WORKER_DEAD_AFTER_S (jobs/liveness.ts), not after graphile-worker's 4 hours. Real worker
// processes (src/main.ts, ROLE=worker) with a short heartbeat; nobody calls
// force_unlock_workers by hand here.
const env = { WORKER_HEARTBEAT_S: '1', WORKER_DEAD_AFTER_S: '4' };
let ctx: TestContext;
let site: ProviderSite;
let receiver: Receiver;
const processes: ServiceProcess[] = [];

beforeAll(async () => {
  site = await startProviderSite();
  receiver = await startReceiver();
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  receiver.verifyWith = [(await createEndpoint(ctx, { url: receiver.url })).secret];
});
afterAll(async () => {
  await Promise.all(processes.map((p) => p.kill()));
  receiver.release();
  await ctx.close();
  await Promise.all([site.close(), receiver.close()]);
});

async function startWorkerProcess(): Promise<ServiceProcess> {
  const p = await startServiceProcess(ctx.database.url, 'worker', env);
  processes.push(p);
  // Beating: one row for each of its three pools (files, thumbnails, main).
  await waitUntil(async () => (await heartbeatsOf(p)).length === 3, 30_000, 'the three pools of the worker to beat');
  return p;
}

const heartbeatsOf = (p: ServiceProcess) =>
  ctx.database.sql<{ worker_id: string; pool: string }[]>`
    select worker_id, pool from worker_heartbeats where process like ${'%:' + p.child.pid}`;

const announcementsOf = (documentId: number) =>
  receiver.received.filter((r) => {
    const body = JSON.parse(r.body);
    return body.type === 'document.created' && body.data.document.id === documentId;
  });

it('a worker killed mid-download: its job is released within seconds, and another worker stores the file and announces it once', async () => {
  const pdf = await makePdf(['Bill 7101']);
  site.route('/l1.pdf', (_req, res, hit) => {
    if (hit === 1) {
      // Half the file, then nothing: the worker is killed while it waits for the rest.
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': String(pdf.length) });
      res.write(pdf.subarray(0, pdf.length >> 1));
      return;
    }
    res.writeHead(200, { 'content-type': 'application/pdf' }).end(pdf);
  });
  const first = await startWorkerProcess();
  const firstPools = await heartbeatsOf(first);
  const res = await ctx.sendWebhook(
    'CONNECTION_SYNCED',
    syncedPayload({ userId: 71, connectionId: 710, subscriptions: [{ id: 7100, documents: [{ id: 7101, url: site.url('/l1.pdf') }] }] }),
  );
  expect(res.status).toBe(200);
  await waitUntil(async () => site.hits('/l1.pdf') === 1, 30_000, 'the download to start');
  const [job] = await ctx.database.sql<{ locked_by: string }[]>`
    select locked_by from graphile_worker.jobs where task_identifier like 'fetch_document_file%'`;
  const filesPool = firstPools.find((h) => h.pool === 'files')!.worker_id;
  expect(job.locked_by).toBe(filesPool);

  const second = await startWorkerProcess();
  // Its heartbeat has a connection of its own.
  const [{ n }] = await ctx.database.sql<{ n: number }[]>`
    select count(*)::int as n from pg_stat_activity where datname = current_database() and application_name = 'docrelay-liveness'`;
  expect(n).toBeGreaterThanOrEqual(1);

  const killedAt = performance.now();
  await first.kill();
  const fileReady = async () => {
    const [row] = await ctx.database.sql<{ status: string; sha256: string | null }[]>`select status, sha256 from document_files where document_id = 7101`;
    return row.status === 'ready' && row;
  };
  const file = await waitUntil(fileReady, 60_000, 'the second worker to finish the file');
  const readyAfterS = (performance.now() - killedAt) / 1000;
  await waitUntil(async () => announcementsOf(7101).length > 0, 30_000, 'the bill announced');
  const announcedAfterS = (performance.now() - killedAt) / 1000;
  console.log(`worker-liveness: file ready ${readyAfterS.toFixed(1)} s and announced ${announcedAfterS.toFixed(1)} s after SIGKILL (WORKER_DEAD_AFTER_S=${env.WORKER_DEAD_AFTER_S})`);

  expect(site.hits('/l1.pdf')).toBe(2);
  expect(file.sha256).toBe(createHash('sha256').update(pdf).digest('hex'));
  // The second worker released exactly the dead pool's job, and said so.
  expect(second.output()).toContain('released the jobs of worker pools whose heartbeat stopped');
  expect(second.output()).toContain(filesPool);
  // The dead process's rows are gone with its jobs.
  await waitUntil(async () => (await heartbeatsOf(first)).length === 0, 10_000, "the dead worker's heartbeat rows to go");
  // Announced once: one message, delivered, under its one webhook-id.
  const messages = await waitUntil(async () => {
    const rows = await ctx.database.sql<{ id: string; status: string }[]>`
      select m.id, m.status from messages m join events e on e.id = m.event_id
      where e.type = 'document.created' and (e.data->'document'->>'id')::bigint = 7101`;
    return rows.every((m) => m.status === 'succeeded') && rows;
  }, 30_000, 'the announcement delivered');
  expect(messages).toHaveLength(1);
  expect(announcementsOf(7101).map((r) => [r.headers['webhook-id'], r.verified[0]])).toEqual([[messages[0].id, true]]);
}, 180_000);

it('a lock held by a pool with no heartbeat row is released once it is older than WORKER_DEAD_AFTER_S', async () => {
  // A pool that died before its first beat (or a worker of a release without heartbeats).
  const [{ id }] = await ctx.database.sql<{ id: string }[]>`
    select id from graphile_worker.add_job('sweep_stuck_files', '{}'::json, run_at => now() + interval '1 hour')`;
  await ctx.database.sql`
    update graphile_worker._private_jobs set locked_by = 'worker-that-never-beat', locked_at = now() - interval '5 seconds', run_at = now()
    where id = ${id}`;
  // Released, then run (and completed) by the living worker.
  await waitUntil(async () => (await ctx.database.sql`select 1 from graphile_worker._private_jobs where id = ${id}`).length === 0, 30_000, 'the job released and run');
  expect(processes.at(-1)!.output()).toContain('worker-that-never-beat');
}, 60_000);

it('a worker that stops cleanly deletes its heartbeat rows', async () => {
  const p = processes.at(-1)!;
  expect(await heartbeatsOf(p)).toHaveLength(3);
  p.child.kill('SIGTERM');
  expect(await p.exited).toBe(0);
  expect(await heartbeatsOf(p)).toEqual([]);
}, 60_000);

it('with its database unreachable, the heartbeat logs a warning, throws nothing and closes at once', async () => {
  const lines: string[] = [];
  const log = createLogger('warn', { write: (line: string) => void lines.push(line) });
  const url = `postgres://docrelay:hunter2-not-logged@127.0.0.1:${await freePort()}/nowhere`;
  const liveness = startLiveness(url, { heartbeatS: 1, deadAfterS: 2 }, log);
  liveness.add('worker-1', 'main');
  liveness.beat();
  await waitUntil(async () => lines.some((l) => l.includes('worker heartbeat failed')), 20_000, 'the failure logged');
  const closing = performance.now();
  await liveness.close();
  expect(performance.now() - closing).toBeLessThan(5_000);
  const warning = JSON.parse(lines.find((l) => l.includes('worker heartbeat failed'))!);
  expect(warning).toMatchObject({ level: 40, step: 'heartbeat', code: 'ECONNREFUSED' });
  expect(lines.join('\n')).not.toContain('hunter2');
});
