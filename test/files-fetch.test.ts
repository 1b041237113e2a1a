import { createHash } from 'node:crypto';
import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { signedFileUrl } from '../src/lib/file-links.js';
import { pdfPageText } from '../src/files/pdf.js';
import { CHUNK_BYTES } from '../src/blobs/store.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { fileJobsOf, rescheduleNow } from './helpers/jobs.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { syncedPayload } from './helpers/webhooks.js';

// Document files end to end: a sync adds documents, the real worker fetches their files
// from a provider website on loopback (so private networks are allowed in this file;
// files-ssrf.test.ts runs with them refused), and the API serves them.

const MAX_BYTES = 2_000_000;
let ctx: TestContext;
let site: ProviderSite;
let pdf: Buffer;
const sha = (b: Buffer | string) => createHash('sha256').update(b).digest('hex');

beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', FILE_MAX_BYTES: String(MAX_BYTES) });
  site = await startProviderSite();
  pdf = await makePdf(['Facture Acme 42 total 13.37 EUR', 'Page two'], { padTo: 100_000 });
  await ctx.startWorker();
});
afterAll(async () => {
  await ctx.close();
  await site.close();
});

let nextId = 5000;
const id = () => ++nextId;

type Doc = { id: number; url?: string | null; name?: string };
/** A sync of one new connection (or `connectionId`) holding the given documents. */
async function sync(userId: number, docs: Doc[], opts: { connectionId?: number; subscriptionId?: number; lastUpdate?: string } = {}) {
  const payload = syncedPayload({
    userId,
    connectionId: opts.connectionId ?? id(),
    lastUpdate: opts.lastUpdate,
    subscriptions: [{ id: opts.subscriptionId ?? id(), documents: docs }],
  });
  const res = await ctx.sendWebhook('CONNECTION_SYNCED', payload);
  expect(res.status).toBe(200);
}

type DocumentJson = {
  url: string | null;
  thumb_url: string | null;
  file: { status: string; content_type: string | null; size: number | null; sha256: string | null; error: string | null };
};
async function documentOf(userId: number, docId: number): Promise<DocumentJson> {
  const res = await ctx.request('GET', `/users/${userId}/documents/${docId}`);
  expect(res.status).toBe(200);
  return res.json();
}
/** Poll the API until the worker has settled the file. */
async function settled(userId: number, docId: number, timeoutMs = 60_000): Promise<DocumentJson> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const doc = await documentOf(userId, docId);
    if (doc.file.status !== 'pending') return doc;
    if (Date.now() > until) throw new Error(`file of document ${docId} still pending`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
/** Poll until the thumbnail, drawn after the file is ready (render_thumbnails), is there. */
async function withThumbnail(userId: number, docId: number, timeoutMs = 60_000): Promise<DocumentJson> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const doc = await documentOf(userId, docId);
    if (doc.thumb_url) return doc;
    if (Date.now() > until) throw new Error(`document ${docId} has no thumbnail`);
    await new Promise((r) => setTimeout(r, 100));
  }
}
/** A link of the API as a path through the app (PUBLIC_URL stripped). */
const get = (link: string, headers: Record<string, string> = {}) =>
  Promise.resolve(ctx.app.request(link.slice(ctx.config.publicUrl.length), { headers }));
const setForcePdf = async (v: '0' | '1') => expect((await ctx.request('POST', '/config', { body: { force_pdf: v } })).status).toBe(200);
const blobCount = async (sha256: string) =>
  Number((await ctx.database.db.execute<{ n: string }>(sql`select count(*) as n from blobs where sha256 = ${sha256}`))[0].n);
const pngSize = (png: Buffer) => ({ width: png.readUInt32BE(16), height: png.readUInt32BE(20) });

describe('document files', { timeout: 90_000 }, () => {
  it('downloads a PDF whatever its Content-Type says, and serves it and its thumbnail through signed links', async () => {
    const u = id(), d = id();
    site.route('/bills/42', send(pdf, 'text/html; charset=utf-8'));
    await sync(u, [{ id: d, url: site.url('/bills/42'), name: 'Facture Électricité "mars"/2026' }]);
    const doc = await settled(u, d);
    expect(doc.file).toEqual({ status: 'ready', content_type: 'application/pdf', size: pdf.length, sha256: sha(pdf), error: null });
    expect(doc.url).toMatch(new RegExp(`^${ctx.config.publicUrl}/files/${d}\\?exp=\\d+&sig=[\\w-]+$`));

    const res = await get(doc.url!);
    expect(res.status).toBe(200);
    expect(res.headers.get('content-type')).toBe('application/pdf');
    expect(res.headers.get('content-length')).toBe(String(pdf.length));
    expect(res.headers.get('content-disposition')).toBe(
      `inline; filename="Facture Electricite _mars_2026.pdf"; filename*=UTF-8''Facture%20%C3%89lectricit%C3%A9%20_mars_2026.pdf`,
    );
    expect(res.headers.get('x-content-type-options')).toBe('nosniff');
    expect(Buffer.from(await res.arrayBuffer()).equals(pdf)).toBe(true);

    const thumb = await get((await withThumbnail(u, d)).thumb_url!);
    expect(thumb.status).toBe(200);
    expect(thumb.headers.get('content-type')).toBe('image/png');
    const png = Buffer.from(await thumb.arrayBuffer());
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(pngSize(png).width).toBe(300);
    expect(pngSize(png).height).toBeGreaterThan(300); // portrait A4
  });

  it('serves the file to an authenticated client of its user, and to no other user', async () => {
    const u = id(), other = id(), d = id();
    site.route('/bills/auth', send(pdf, 'application/pdf'));
    await sync(u, [{ id: d, url: site.url('/bills/auth') }]);
    await sync(other, [{ id: id(), url: null }]);
    await settled(u, d);
    const token = async (userId: number) => (await (await ctx.request('POST', `/users/${userId}/token`)).json()).token as string;
    const mine = await ctx.request('GET', `/users/me/documents/${d}/file`, { token: await token(u) });
    expect(mine.status).toBe(200);
    expect(Buffer.from(await mine.arrayBuffer()).equals(pdf)).toBe(true);
    const admin = await ctx.request('GET', `/users/${u}/documents/${d}/file`);
    expect(admin.status).toBe(200);
    const otherToken = await token(other);
    for (const path of [`/users/me/documents/${d}/file`, `/users/${u}/documents/${d}/file`]) {
      const res = await ctx.request('GET', path, { token: otherToken });
      expect(res.status).toBe(404);
      expect((await res.json()).error.code).toBe('not_found');
    }
    expect((await ctx.request('GET', `/users/${u}/documents/${d}/file`, { token: null })).status).toBe(401);
  });

  it('refuses expired, tampered and misdirected links with 403 invalid_link', async () => {
    const u = id(), d = id(), d2 = id();
    site.route('/bills/links', send(pdf, 'application/pdf'));
    await sync(u, [{ id: d, url: site.url('/bills/links') }, { id: d2, url: site.url('/bills/links') }]);
    const doc = await settled(u, d);
    await settled(u, d2);
    const path = (link: string) => link.slice(ctx.config.publicUrl.length);
    const good = path(doc.url!);
    const expired = path(signedFileUrl(ctx.deps.links, 'file', d, Date.now() - (ctx.config.linkTtlS + 10) * 1000));
    const sig = new URL(doc.url!).searchParams.get('sig')!;
    const flipped = sig.slice(0, -1) + (sig.endsWith('A') ? 'B' : 'A');
    const bad = [
      expired,
      good.replace(/sig=[^&]+/, `sig=${flipped}`),
      good.replace(/exp=(\d+)/, (_m, e) => `exp=${Number(e) + 3600}`), // extended
      good.replace(`/files/${d}?`, `/files/${d2}?`), // another document
      good.replace(`/files/${d}?`, `/files/${d}/thumbnail?`), // another variant
      `/files/${d}`,
      `/files/${d}?exp=99999999999`,
      `/files/abc?exp=1&sig=x`,
    ];
    for (const p of bad) {
      const res = await ctx.app.request(p);
      expect(res.status, p).toBe(403);
      expect((await res.json()).error.code).toBe('invalid_link');
    }
    expect((await ctx.app.request(good)).status).toBe(200);
  });

  it('stores an HTML page as HTML when force_pdf is off, served as an attachment, with a Chromium thumbnail', async () => {
    const u = id(), d = id();
    const html = '<!doctype html><html><body><h1>Votre facture</h1><p>Montant 99,00 €</p></body></html>';
    site.route('/bills/page', send(html, 'application/pdf')); // the label lies
    await sync(u, [{ id: d, url: site.url('/bills/page'), name: 'Facture web' }]);
    const doc = await settled(u, d);
    expect(doc.file).toMatchObject({ status: 'ready', content_type: 'text/html', sha256: sha(html) });
    const res = await get(doc.url!);
    expect(res.headers.get('content-type')).toBe('text/html');
    expect(res.headers.get('content-disposition')).toMatch(/^attachment; filename="Facture web\.html"/);
    expect(res.headers.get('content-security-policy')).toMatch(/sandbox/);
    expect(await res.text()).toBe(html);
    const png = Buffer.from(await (await get((await withThumbnail(u, d)).thumb_url!)).arrayBuffer());
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(pngSize(png).width).toBe(300);
  });

  it('converts HTML to PDF with Chromium when force_pdf is on, JavaScript and network off, keeping the original', async () => {
    const u = id(), d = id();
    const html = `<html><head><meta charset="utf-8"><link rel="stylesheet" href="${site.url('/style.css')}"></head>
      <body><h1>Facture Électricité</h1><p>Total à payer : 123,45 €</p>
      <img src="${site.url('/tracker.png')}"><script>document.body.innerHTML = 'SCRIPT RAN'</script></body></html>`;
    site.route('/bills/convert', send(html, 'text/html; charset=utf-8'));
    await setForcePdf('1');
    try {
      await sync(u, [{ id: d, url: site.url('/bills/convert'), name: 'Facture' }]);
    } finally {
      await setForcePdf('0');
    }
    const doc = await settled(u, d);
    expect(doc.file.status).toBe('ready');
    expect(doc.file.content_type).toBe('application/pdf');
    const res = await get(doc.url!);
    expect(res.headers.get('content-disposition')).toMatch(/^inline; filename="Facture\.pdf"/);
    const out = Buffer.from(await res.arrayBuffer());
    expect(out.subarray(0, 5).toString()).toBe('%PDF-');
    expect(sha(out)).toBe(doc.file.sha256);
    const text = await pdfPageText(out);
    expect(text).toContain('Facture Électricité');
    expect(text).toContain('123,45 €');
    expect(text).not.toContain('SCRIPT RAN');
    expect(site.hits('/tracker.png') + site.hits('/style.css')).toBe(0);
    const [row] = await ctx.database.db.execute<{ original_sha256: string; thumbnail_sha256: string }>(
      sql`select original_sha256, thumbnail_sha256 from document_files where document_id = ${d}`,
    );
    expect(row.original_sha256).toBe(sha(html));
    expect(await blobCount(sha(html))).toBe(1);
    expect((await get(doc.thumb_url!)).headers.get('content-type')).toBe('image/png');
  });

  it('never converts retroactively: force_pdf applies to documents added by the syncs after it was turned on', async () => {
    const u = id(), c = id(), s = id(), a = id(), b = id();
    site.route('/bills/retro', send('<html><body><p>Old bill</p></body></html>', 'text/html'));
    await sync(u, [{ id: a, url: site.url('/bills/retro') }], { connectionId: c, subscriptionId: s, lastUpdate: '2026-11-20T08:00:00Z' });
    expect((await settled(u, a)).file.content_type).toBe('text/html');
    await setForcePdf('1');
    try {
      await sync(u, [{ id: a, url: site.url('/bills/retro'), name: 'renamed' }, { id: b, url: site.url('/bills/retro') }], {
        connectionId: c,
        subscriptionId: s,
        lastUpdate: '2026-11-21T08:00:00Z',
      });
    } finally {
      await setForcePdf('0');
    }
    expect((await settled(u, b)).file.content_type).toBe('application/pdf');
    const again = await documentOf(u, a);
    expect(again.file.content_type).toBe('text/html');
    expect(site.hits('/bills/retro')).toBe(2); // a was not fetched again
  });

  it('follows redirects to the file', async () => {
    const u = id(), d = id();
    site.route('/dl/start', (_q, res) => res.writeHead(302, { location: '/dl/next' }).end());
    site.route('/dl/next', (_q, res) => res.writeHead(303, { location: site.url('/dl/bill.pdf') }).end());
    site.route('/dl/bill.pdf', send(pdf, 'application/octet-stream'));
    await sync(u, [{ id: d, url: site.url('/dl/start') }]);
    expect((await settled(u, d)).file).toMatchObject({ status: 'ready', sha256: sha(pdf), content_type: 'application/pdf' });
  });

  it('fails a 404 at once, with the reason, and does not retry it', async () => {
    const u = id(), d = id();
    await sync(u, [{ id: d, url: site.url('/bills/missing') }]);
    const doc = await settled(u, d);
    expect(doc.file).toEqual({ status: 'failed', content_type: null, size: null, sha256: null, error: 'provider answered HTTP 404' });
    expect(doc.url).toBeNull();
    expect(doc.thumb_url).toBeNull();
    expect(site.hits('/bills/missing')).toBe(1);
    // Done at the first attempt, not waiting for a retry (the job row goes once the worker completes it).
    let jobs: { attempts: number }[] = [];
    for (let i = 0; i < 50; i++) {
      jobs = await fileJobsOf(ctx.database.db, d);
      if (jobs.length === 0) break;
      expect(jobs[0].attempts).toBe(1);
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(jobs).toEqual([]);
  });

  it('retries a 500 with backoff, then succeeds', async () => {
    const u = id(), d = id();
    site.route('/bills/flaky', (req, res, hit) => (hit === 1 ? res.writeHead(500).end('oops') : send(pdf, 'application/pdf')(req, res, hit)));
    await sync(u, [{ id: d, url: site.url('/bills/flaky') }]);
    // Wait for the first attempt to fail and be rescheduled (e^1 s ahead), then bring it forward.
    const until = Date.now() + 15_000;
    let job: { id: string; attempts: number; last_error: string | null; run_at: Date } | undefined;
    while (Date.now() < until) {
      [job] = await fileJobsOf(ctx.database.db, d);
      if (job?.last_error) break;
      await new Promise((r) => setTimeout(r, 100));
    }
    expect(job?.attempts).toBe(1);
    expect(job?.last_error).toMatch(/HTTP 500/);
    expect(new Date(job!.run_at).getTime()).toBeGreaterThan(Date.now());
    expect((await documentOf(u, d)).file.status).toBe('pending');
    expect(await rescheduleNow(ctx.database.db, sql`id = ${job!.id}`)).toBe(1);
    expect((await settled(u, d)).file).toMatchObject({ status: 'ready', sha256: sha(pdf) });
    expect(site.hits('/bills/flaky')).toBe(2);
  });

  it('fails a file larger than FILE_MAX_BYTES without storing anything', async () => {
    const u = id(), d = id();
    const big = await makePdf(['too big'], { padTo: MAX_BYTES + 50_000 });
    site.route('/bills/big', send(big, 'application/pdf'));
    await sync(u, [{ id: d, url: site.url('/bills/big') }]);
    const doc = await settled(u, d);
    expect(doc.file).toMatchObject({ status: 'failed', sha256: null, error: `file larger than FILE_MAX_BYTES (${MAX_BYTES} bytes)` });
    expect(await blobCount(sha(big))).toBe(0);
    expect(site.hits('/bills/big')).toBe(1);
  });

  it('marks a document without a URL as having no file', async () => {
    const u = id(), d = id();
    await sync(u, [{ id: d, url: null }]);
    const doc = await documentOf(u, d);
    expect(doc.file.status).toBe('none');
    expect(doc.url).toBeNull();
  });

  it('stores identical bytes once, and erasure deletes blobs only when nothing references them', async () => {
    const u1 = id(), u2 = id(), c1 = id(), c2 = id(), d1 = id(), d2 = id();
    const shared = await makePdf(['Shared bill'], { padTo: 3 * CHUNK_BYTES + 1000 });
    site.route('/a/shared.pdf', send(shared, 'application/pdf'));
    site.route('/b/shared.pdf', send(shared, 'application/pdf'));
    await sync(u1, [{ id: d1, url: site.url('/a/shared.pdf') }], { connectionId: c1 });
    await sync(u2, [{ id: d2, url: site.url('/b/shared.pdf') }], { connectionId: c2 });
    const [f1, f2] = [await withThumbnail(u1, d1), await withThumbnail(u2, d2)];
    expect(f1.file.sha256).toBe(sha(shared));
    expect(f2.file.sha256).toBe(sha(shared));
    expect(await blobCount(sha(shared))).toBe(1);
    const chunks = async () =>
      Number((await ctx.database.db.execute<{ n: string }>(sql`select count(*) as n from blob_chunks where sha256 = ${sha(shared)}`))[0].n);
    expect(await chunks()).toBe(4);
    const [{ thumbnail_sha256: thumb }] = await ctx.database.db.execute<{ thumbnail_sha256: string }>(
      sql`select thumbnail_sha256 from document_files where document_id = ${d1}`,
    );
    expect(await blobCount(thumb)).toBe(1);

    const del = (conn: number, user: number) => ctx.sendWebhook('CONNECTION_DELETED', { id: conn, id_user: user });
    expect((await del(c1, u1)).status).toBe(200);
    expect(await blobCount(sha(shared))).toBe(1); // d2 still uses it
    expect((await get(f2.url!)).status).toBe(200);
    expect((await del(c2, u2)).status).toBe(200);
    expect(await blobCount(sha(shared))).toBe(0);
    expect(await blobCount(thumb)).toBe(0);
    expect(await chunks()).toBe(0);
    expect((await get(f2.url!)).status).toBe(404);
  });
});
