import { percentile, report, startBenchService, stopPgServer } from './support.js';

/**
 * CONTRACT.md §9 read: `GET /users/me/documents?limit=100` p50/p99 through HTTP with
 * 100,000 documents stored for that user (rows generated in SQL: the point is the read).
 */
export async function benchRead() {
  const svc = await startBenchService();
  try {
    const sql = svc.database.sql;
    await sql`insert into users (id) values (1)`;
    await sql`insert into connections (id, user_id) values (1, 1)`;
    await sql`insert into subscriptions (id, connection_id, user_id, label) select g, 1, 1, 'S' || g from generate_series(1, 50) g`;
    await sql`
      insert into documents (id, subscription_id, user_id, name, type, date, total_amount, currency, source_url)
      select g, 1 + g % 50, 1, 'Bill ' || g, case when g % 5 = 0 then 'contract' else 'bill' end,
             date '2020-01-01' + (g % 2000), 42.5, 'EUR', 'https://provider.example/' || g
      from generate_series(1, 100000) g`;
    await sql`insert into document_files (document_id, status) select id, 'none' from documents`;
    await sql`vacuum analyze`; // the steady state autovacuum reaches: visibility map set
    const tokenRes = await fetch(`${svc.baseUrl}/users/1/token`, { method: 'POST', headers: { authorization: `Bearer ${svc.config.adminToken}` } });
    const { token } = (await tokenRes.json()) as { token: string };

    const get = async (path: string) => {
      const t = performance.now();
      const res = await fetch(svc.baseUrl + path, { headers: { authorization: `Bearer ${token}` } });
      const body = (await res.json()) as { documents: unknown[]; total: number };
      if (res.status !== 200 || body.documents.length !== 100 || body.total !== 100000) throw new Error(`unexpected ${res.status}`);
      return performance.now() - t;
    };
    for (let i = 0; i < 30; i++) await get('/users/me/documents?limit=100');
    const latencies: number[] = [];
    for (let i = 0; i < 300; i++) latencies.push(await get(`/users/me/documents?limit=100&offset=${(i % 10) * 100}`));
    latencies.sort((a, b) => a - b);
    report('read: GET /users/me/documents?limit=100 with 100,000 documents (300 requests, sequential)', {
      'p50 ms': percentile(latencies, 50).toFixed(1),
      'p99 ms': percentile(latencies, 99).toFixed(1),
    });
  } finally {
    await svc.close();
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  await benchRead();
  await stopPgServer();
}
