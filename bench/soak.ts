import { sql } from 'drizzle-orm';
import { startDeliveryRig, sync } from './e2e.js';
import { postSync, report, stopPgServer } from './support.js';

/**
 * Soak: SOAK_SECONDS (default 600) at a steady rate — one 10-document sync a second, PDFs
 * from a loopback site, one loopback receiver — then: webhook errors, bills not delivered,
 * the oldest job left at the end, and this process's RSS at start and end (API and worker
 * run in it). Not part of `npm test`: `npm run bench -- soak`.
 */
const SECONDS = Number(process.env.SOAK_SECONDS ?? 600);
const DOCS = 10;

export async function benchSoak() {
  const { svc, arrivals, url, close } = await startDeliveryRig();
  try {
    global.gc?.();
    const rssStart = process.memoryUsage().rss;
    let errors = 0;
    let sent = 0;
    const t0 = performance.now();
    const pending: Promise<void>[] = [];
    for (let k = 0; k < SECONDS; k++) {
      const wait = t0 + k * 1000 - performance.now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
      const ids = Array.from({ length: DOCS }, (_, i) => (1_000 + k) * 100 + i);
      pending.push(postSync(svc, sync(1_000 + k, ids, url)).then(() => void (sent += DOCS), () => void errors++));
    }
    await Promise.all(pending);
    const [oldest] = await svc.deps.db.execute<{ task: string | null; age_s: number | null }>(sql`
      select task_identifier as task, extract(epoch from now() - min(run_at))::float8 as age_s
      from graphile_worker.jobs where task_identifier <> 'sweep_stranded_messages' group by 1 order by 2 desc limit 1`);
    const rssEnd = process.memoryUsage().rss;
    report(`soak: ${SECONDS} s at one ${DOCS}-document sync a second, PDFs and receiver on loopback`, {
      'webhooks sent': SECONDS,
      'webhook errors': errors,
      'bills accepted': sent,
      'bills delivered by the end': arrivals.arrived.size,
      'oldest job left at the end': oldest ? `${oldest.task}, ${oldest.age_s?.toFixed(1)} s` : 'none',
      'RSS at start MiB': (rssStart / 2 ** 20).toFixed(0),
      'RSS at end MiB': (rssEnd / 2 ** 20).toFixed(0),
    });
  } finally {
    await close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchSoak();
  await stopPgServer();
}
