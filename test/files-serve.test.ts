import { parse as parseDisposition } from 'content-disposition';
import type { JobHelpers } from 'graphile-worker';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { fetchDocumentFile } from '../src/files/tasks.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { syncedPayload } from './helpers/webhooks.js';

// How /files/{id} serves a ready file: its headers, as clients and PDF viewers use them.
// The file job is run by hand (no worker), so each test starts from a settled file.

let ctx: TestContext;
let site: ProviderSite;
let pdf: Buffer;
let fetchFile: ReturnType<typeof fetchDocumentFile>;

beforeAll(async () => {
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  site = await startProviderSite();
  pdf = await makePdf(['Bill served by the serving tests'], { padTo: 50_000 });
  fetchFile = fetchDocumentFile(ctx.deps);
});
afterAll(async () => {
  await ctx.close();
  await site.close();
});

let nextId = 12_000;
const id = () => ++nextId;

/** A document of a new user, its file fetched from `path`; its API object. */
async function readyDocument(path: string, name: string) {
  const u = id(), d = id();
  const res = await ctx.sendWebhook(
    'CONNECTION_SYNCED',
    syncedPayload({ userId: u, connectionId: id(), subscriptions: [{ id: id(), documents: [{ id: d, url: site.url(path), name }] }] }),
  );
  expect(res.status).toBe(200);
  await fetchFile({ documentId: d }, { job: { attempts: 1, max_attempts: 25 } } as unknown as JobHelpers);
  const doc = await (await ctx.request('GET', `/users/${u}/documents/${d}`)).json();
  expect(doc.file.status).toBe('ready');
  return doc as { id: number; url: string; thumb_url: string | null; file: { content_type: string } };
}
const get = (link: string, headers: Record<string, string> = {}) =>
  Promise.resolve(ctx.app.request(link.slice(ctx.config.publicUrl.length), { headers }));

describe('Content-Disposition', () => {
  it('gives a hostile name one filename parameter and no path separator', async () => {
    site.route('/hostile.pdf', send(pdf, 'application/pdf'));
    const doc = await readyDocument('/hostile.pdf', 'a＂; filename=＂..／..／evil.sh＂');
    const header = (await get(doc.url)).headers.get('content-disposition')!;
    // The parser refuses a duplicated parameter or a broken quoted string.
    const parsed = parseDisposition(header);
    expect(parsed.type).toBe('inline');
    expect(Object.keys(parsed.parameters)).toEqual(['filename']);
    const name = parsed.parameters.filename;
    expect(name).not.toMatch(/[/\\"]/);
    expect(name.normalize('NFKC')).not.toMatch(/[/\\"]/);
    expect(name.endsWith('.pdf')).toBe(true);
    // The ASCII fallback alone, as an old client reads it.
    const fallback = /filename="([^"]*)"/.exec(header)![1];
    expect(fallback).not.toMatch(/[/\\]/);
    expect(fallback.endsWith('.pdf')).toBe(true);
  });
});

describe('/files/{id} as a cache and a PDF viewer use it', () => {
  let big: Buffer;
  let url: string;
  beforeAll(async () => {
    big = await makePdf(['A bill longer than one stored chunk'], { padTo: 1_200_000 }); // three chunks of 512 KiB
    site.route('/big.pdf', send(big, 'application/pdf'));
    url = (await readyDocument('/big.pdf', 'Facture longue')).url;
  });

  it('is immutable for as long as a link lives, and answers 304 to its ETag', async () => {
    const res = await get(url);
    expect(res.status).toBe(200);
    expect(res.headers.get('cache-control')).toBe(`private, max-age=${ctx.config.linkTtlS}, immutable`);
    expect(res.headers.get('accept-ranges')).toBe('bytes');
    const etag = res.headers.get('etag')!;
    await res.arrayBuffer();

    const again = await get(url, { 'if-none-match': etag });
    expect(again.status).toBe(304);
    expect(await again.text()).toBe('');
    expect(again.headers.get('etag')).toBe(etag);
    expect((await get(url, { 'if-none-match': `"other", W/${etag}` })).status).toBe(304);
    const changed = await get(url, { 'if-none-match': '"something-else"' });
    expect(changed.status).toBe(200);
    await changed.arrayBuffer();
  });

  it('serves byte ranges, across stored chunks, and 416 past the end', async () => {
    const part = async (range: string, headers: Record<string, string> = {}) => {
      const res = await get(url, { range, ...headers });
      return { status: res.status, contentRange: res.headers.get('content-range'), length: res.headers.get('content-length'), body: Buffer.from(await res.arrayBuffer()) };
    };
    const first = await part('bytes=0-99');
    expect(first).toMatchObject({ status: 206, contentRange: `bytes 0-99/${big.length}`, length: '100' });
    expect(first.body.equals(big.subarray(0, 100))).toBe(true);

    const across = await part('bytes=524000-1050000'); // from chunk 0 into chunk 2
    expect(across).toMatchObject({ status: 206, contentRange: `bytes 524000-1050000/${big.length}` });
    expect(across.body.equals(big.subarray(524000, 1050001))).toBe(true);

    const tail = await part('bytes=-10');
    expect(tail).toMatchObject({ status: 206, contentRange: `bytes ${big.length - 10}-${big.length - 1}/${big.length}` });
    expect(tail.body.equals(big.subarray(big.length - 10))).toBe(true);

    const open = await part(`bytes=${big.length - 5}-`);
    expect(open.body.equals(big.subarray(big.length - 5))).toBe(true);

    const past = await part(`bytes=${big.length}-`);
    expect(past.status).toBe(416);
    expect(past.contentRange).toBe(`bytes */${big.length}`);
    expect(JSON.parse(past.body.toString()).error.code).toBe('range_not_satisfiable');

    // An If-Range naming another version, or several ranges: the whole file.
    const stale = await part('bytes=0-99', { 'if-range': '"old"' });
    expect(stale.status).toBe(200);
    expect(stale.body.length).toBe(big.length);
    expect((await part('bytes=0-1,5-6')).status).toBe(200);
  });

  it("serves each document's own content type, not the first copy's of the same bytes", async () => {
    const text = 'Facture 42 : total 13,37 EUR\n';
    site.route('/utf8.txt', send(text, 'text/plain; charset=utf-8'));
    site.route('/latin1.txt', send(text, 'text/plain; charset=iso-8859-1'));
    const a = await readyDocument('/utf8.txt', 'A');
    const b = await readyDocument('/latin1.txt', 'B');
    expect(a.file.content_type).toBe('text/plain; charset=utf-8');
    expect(b.file.content_type).toBe('text/plain; charset=iso-8859-1');
    expect((await get(a.url)).headers.get('content-type')).toBe('text/plain; charset=utf-8');
    expect((await get(b.url)).headers.get('content-type')).toBe('text/plain; charset=iso-8859-1');
  });
});
