import { percentile, ratio, report, startBenchService, stopPgServer } from './support.js';

/**
 * Read: `GET /users/me/documents?limit=100` p50/p99 through HTTP with 100,000 documents for
 * the user among 1,000,000 stored (nine other users hold the rest), measured right after
 * loading them — no manual VACUUM, as after a big backfill — plain, with `type` and date
 * filters, and at `offset=50000`. Reference: the bare page query through postgres.js, same
 * database, same moment. Requests alternate between the two, sequentially.
 */
const USERS = 10;
const PER_USER = 100_000;
const REQUESTS = 300;

export async function benchRead() {
  const svc = await startBenchService();
  try {
    const sql = svc.database.sql;
    await sql`insert into users (id) select g from generate_series(1, ${USERS}) g`;
    await sql`insert into connections (id, user_id) select g, g from generate_series(1, ${USERS}) g`;
    // 50 subscriptions per user, ids u*1000 + k.
    await sql`insert into subscriptions (id, connection_id, user_id, label)
      select u * 1000 + k, u, u, 'S' || k from generate_series(1, ${USERS}) u, generate_series(0, 49) k`;
    // Users interleaved, as rows arrive from many syncs: user = 1 + g % 10.
    await sql`
      insert into documents (id, subscription_id, user_id, name, type, date, total_amount, currency, source_url)
      select g, (1 + g % ${USERS}) * 1000 + (g / ${USERS}) % 50, 1 + g % ${USERS}, 'Bill ' || g,
             case when (g / ${USERS}) % 5 = 0 then 'contract' else 'bill' end,
             date '2020-01-01' + ((g / ${USERS}) % 2000), 42.5, 'EUR', 'https://provider.example/' || g
      from generate_series(1, ${USERS * PER_USER}) g`;
    await sql`insert into document_files (document_id, status) select id, 'none' from documents`;
    const tokenRes = await fetch(`${svc.baseUrl}/users/1/token`, { method: 'POST', headers: { authorization: `Bearer ${svc.config.adminToken}` } });
    const { token } = (await tokenRes.json()) as { token: string };

    const cases: { name: string; query: string; offset: number; type?: string; min?: string; max?: string }[] = [
      { name: 'plain', query: 'limit=100', offset: 0 },
      { name: 'type and dates', query: 'limit=100&type=bill&min_date=2021-01-01&max_date=2024-12-31', offset: 0, type: 'bill', min: '2021-01-01', max: '2024-12-31' },
      { name: 'offset=50000', query: 'limit=100&offset=50000', offset: 50_000 },
    ];
    for (const c of cases) {
      const api = async () => {
        const t = performance.now();
        const res = await fetch(`${svc.baseUrl}/users/me/documents?${c.query}`, { headers: { authorization: `Bearer ${token}` } });
        const body = (await res.json()) as { documents: unknown[] };
        if (res.status !== 200 || body.documents.length !== 100) throw new Error(`unexpected ${res.status}`);
        return performance.now() - t;
      };
      // The bare page query: the rows of one page, nothing else (no totals, no JSON).
      const bare = async () => {
        const t = performance.now();
        const rows = await sql`
          select d.*, f.* from documents d left join document_files f on f.document_id = d.id
          where d.user_id = 1
            and (${c.type ?? null}::text is null or d.type = ${c.type ?? null})
            and (${c.min ?? null}::date is null or d.date >= ${c.min ?? null}::date)
            and (${c.max ?? null}::date is null or d.date <= ${c.max ?? null}::date)
          order by d.date desc nulls last, d.id desc limit 100 offset ${c.offset}`;
        if (rows.length !== 100) throw new Error('bare query: short page');
        return performance.now() - t;
      };
      for (let i = 0; i < 20; i++) { await api(); await bare(); }
      const a: number[] = [];
      const b: number[] = [];
      for (let i = 0; i < REQUESTS; i++) { a.push(await api()); b.push(await bare()); }
      a.sort((x, y) => x - y);
      b.sort((x, y) => x - y);
      report(`read (${c.name}): GET /users/me/documents?${c.query}, 100,000 documents of the user among 1,000,000, no VACUUM, ${REQUESTS} requests`, {
        'p50 ms': percentile(a, 50).toFixed(1),
        'p99 ms (target ≤ 20)': percentile(a, 99).toFixed(1),
        'bare page query p50 ms': percentile(b, 50).toFixed(1),
        'bare page query p99 ms': percentile(b, 99).toFixed(1),
        'p99 ratio (target ≤ 4)': ratio(percentile(a, 99), percentile(b, 99)),
      });
    }
  } finally {
    await svc.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchRead();
  await stopPgServer();
}
