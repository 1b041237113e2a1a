import { sql } from 'drizzle-orm';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchDocumentFile } from '../src/files/tasks.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { syncedPayload } from './helpers/webhooks.js';

// force_pdf with a Chromium that cannot render (here: one that cannot even start). The
// download went well, so the page is kept as it came, and it is not downloaded again.

let ctx: TestContext;
let site: ProviderSite;
let fetchFile: ReturnType<typeof fetchDocumentFile>;

beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', CHROMIUM_PATH: '/nonexistent/chromium' });
  site = await startProviderSite();
  fetchFile = fetchDocumentFile(ctx.deps);
});
afterAll(async () => {
  await ctx.close();
  await site.close();
});

const attempt = (documentId: number, attempts: number) =>
  fetchFile({ documentId }, { job: { attempts, max_attempts: 25 } } as unknown as JobHelpers);

describe('a force_pdf conversion that fails', () => {
  it('keeps the downloaded page, ready, served as an attachment in its sandbox, with the error, and does not download again', async () => {
    const html = '<!doctype html><html><body><h1>Facture</h1><p>Total 12,00 €</p></body></html>';
    site.route('/bill.html', send(html, 'text/html; charset=utf-8'));
    expect((await ctx.request('POST', '/config', { body: { force_pdf: '1' } })).status).toBe(200);
    const res = await ctx.sendWebhook(
      'CONNECTION_SYNCED',
      syncedPayload({ userId: 71, connectionId: 72, subscriptions: [{ id: 73, documents: [{ id: 74, url: site.url('/bill.html'), name: 'Facture' }] }] }),
    );
    expect(res.status).toBe(200);

    await attempt(74, 1); // settles: no retryable error thrown
    const doc = await (await ctx.request('GET', '/users/71/documents/74')).json();
    expect(doc.file).toMatchObject({ status: 'ready', content_type: 'text/html; charset=utf-8', size: Buffer.byteLength(html) });
    expect(doc.file.error).toMatch(/^HTML to PDF conversion failed/);
    expect(doc.file.error).not.toContain('/nonexistent'); // details stay in the log
    expect(doc.url).not.toBeNull();

    const file = await ctx.app.request(doc.url.slice(ctx.config.publicUrl.length));
    expect(file.status).toBe(200);
    expect(file.headers.get('content-type')).toBe('text/html; charset=utf-8');
    expect(file.headers.get('content-disposition')).toMatch(/^attachment; filename="Facture\.html"/);
    expect(file.headers.get('content-security-policy')).toMatch(/sandbox/);
    expect(await file.text()).toBe(html);

    await attempt(74, 2); // a retried job (the worker died after the commit) changes nothing
    expect(site.hits('/bill.html')).toBe(1);
    const jobs = await ctx.database.db.execute(sql`select key from graphile_worker.jobs where key = 'announce:74'`);
    expect(jobs.length).toBe(1); // announced, once
  });
});
