import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { syncedPayload } from './helpers/webhooks.js';

// SSRF through the whole pipeline, with FETCH_ALLOW_PRIVATE_NETWORKS at its default (off):
// document URLs that point at loopback, private, link-local or metadata addresses end
// `failed` at the first attempt, nothing stored, and the loopback sites never see a
// connection. (10.0.0.1 and 169.254.169.254 are refused before a socket exists:
// files-address.test.ts proves it; nothing here ever leaves loopback.)

let ctx: TestContext;
let site: ProviderSite;
let site6: ProviderSite;

beforeAll(async () => {
  ctx = await createTestContext();
  expect(ctx.config.fetchAllowPrivateNetworks).toBe(false);
  site = await startProviderSite('127.0.0.1');
  site6 = await startProviderSite('::1');
  const pdf = await makePdf(['internal document']);
  for (const s of [site, site6]) s.route('/bill.pdf', send(pdf, 'application/pdf'));
  await ctx.startWorker();
});
afterAll(async () => {
  await ctx.close();
  await site.close();
  await site6.close();
});

describe('document URLs pointing at private addresses', () => {
  it('end failed with nothing stored and no connection made', async () => {
    const urls = [
      site.url('/bill.pdf'),
      site6.url('/bill.pdf'),
      `http://[::ffff:127.0.0.1]:${site.port}/bill.pdf`,
      `http://localhost:${site.port}/bill.pdf`,
      'http://169.254.169.254/latest/meta-data/iam/security-credentials/',
      'http://10.0.0.1/bill.pdf',
    ];
    const docs = urls.map((url, i) => ({ id: 7000 + i, url }));
    const res = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 70, connectionId: 700, subscriptions: [{ id: 7100, documents: docs }] }));
    expect(res.status).toBe(200);

    const until = Date.now() + 20_000;
    let files: { document_id: string; status: string; error: string | null; sha256: string | null }[] = [];
    while (Date.now() < until) {
      files = await ctx.database.db.execute(sql`select document_id::text, status, error, sha256 from document_files order by document_id`);
      if (files.length === urls.length && files.every((f) => f.status !== 'pending')) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(files.map((f) => f.status)).toEqual(urls.map(() => 'failed'));
    for (const f of files) {
      expect(f.error).toMatch(/^refused: .*(is|resolves to .*,) a private or reserved address$/);
      expect(f.sha256).toBeNull();
    }
    expect(files.find((f) => f.document_id === '7005')?.error).toBe('refused: 10.0.0.1 is a private or reserved address');
    expect(files.find((f) => f.document_id === '7003')?.error).toMatch(/^refused: localhost resolves to /);

    const [{ n }] = await ctx.database.db.execute<{ n: string }>(sql`select count(*)::text as n from blobs`);
    expect(n).toBe('0');
    expect(site.connections()).toBe(0);
    expect(site6.connections()).toBe(0);
    // A refused address is final: each job completes at its first attempt, none waits for a retry.
    let jobs: { key: string; attempts: number }[] = [];
    for (let i = 0; i < 50; i++) {
      jobs = await ctx.database.db.execute(sql`select key, attempts from graphile_worker.jobs where task_identifier = 'fetch_document_files'`);
      if (jobs.length === 0) break;
      expect(jobs.every((j) => j.attempts <= 1)).toBe(true);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(jobs).toEqual([]);

    const api = await ctx.request('GET', '/users/70/documents/7004');
    expect((await api.json()).file).toMatchObject({ status: 'failed', error: 'refused: 169.254.169.254 is a private or reserved address' });
  });
});
