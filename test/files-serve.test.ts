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
