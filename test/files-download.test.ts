import { createHash } from 'node:crypto';
import { mkdtempSync, readFileSync, statSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createFetchDispatcher, defaultFetchLimits, download, FetchError, type FetchLimits } from '../src/files/fetch.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';

// The downloader against a provider website on loopback (private networks allowed here;
// files-address.test.ts covers refusals): redirects, limits, timeouts, status codes.

let site: ProviderSite;
let pdf: Buffer;
const dir = mkdtempSync(join(tmpdir(), 'docrelay-dl-'));
let n = 0;
const target = () => join(dir, `f${++n}`);
const limits: FetchLimits = { ...defaultFetchLimits(200_000, true), headersTimeoutMs: 500, bodyIdleTimeoutMs: 500, totalTimeoutMs: 5_000 };
const dispatcher = createFetchDispatcher(limits);
const fail = (url: string, l: FetchLimits = limits) =>
  download(url, target(), l, dispatcher).then(
    () => expect.fail('download should have failed'),
    (e: unknown) => {
      expect(e).toBeInstanceOf(FetchError);
      return e as FetchError;
    },
  );

beforeAll(async () => {
  site = await startProviderSite();
  pdf = await makePdf(['Facture 42'], { padTo: 100_000 });
  site.route('/bill.pdf', send(pdf, 'application/pdf'));
});
afterAll(() => site.close());

describe('download', () => {
  it('streams the body to a file with its sha256 and size', async () => {
    const out = await download(site.url('/bill.pdf'), target(), limits, dispatcher);
    expect(out.size).toBe(pdf.length);
    expect(out.sha256).toBe(createHash('sha256').update(pdf).digest('hex'));
    expect(readFileSync(out.path).equals(pdf)).toBe(true);
    expect(out.declaredType).toBe('application/pdf');
  });

  it('follows a chain of redirects, relative and absolute, to the file', async () => {
    site.route('/r1', (_q, res) => res.writeHead(301, { location: site.url('/r2') }).end());
    site.route('/r2', (_q, res) => res.writeHead(302, { location: '/r3?x=1' }).end());
    site.route('/r3', (_q, res) => res.writeHead(307, { location: 'bill.pdf' }).end());
    const out = await download(site.url('/r1'), target(), limits, dispatcher);
    expect(out.size).toBe(pdf.length);
    expect(out.finalUrl).toBe(site.url('/bill.pdf'));
  });

  it('gives up after 5 redirects', async () => {
    site.route('/loop', (_q, res, hit) => res.writeHead(302, { location: `/loop?${hit}` }).end());
    const err = await fail(site.url('/loop'));
    expect(err.code).toBe('too_many_redirects');
    expect(err.permanent).toBe(true);
    expect(site.hits('/loop')).toBe(6);
  });

  it('treats 4xx as final and 5xx, 429 and network errors as worth a retry', async () => {
    site.route('/gone', (_q, res) => res.writeHead(410).end());
    site.route('/boom', (_q, res) => res.writeHead(503).end());
    site.route('/busy', (_q, res) => res.writeHead(429).end());
    site.route('/reset', (req) => req.socket.destroy());
    const missing = await fail(site.url('/nothing-here'));
    expect([missing.code, missing.permanent, missing.message]).toEqual(['http_error', true, 'provider answered HTTP 404']);
    expect((await fail(site.url('/gone'))).permanent).toBe(true);
    const boom = await fail(site.url('/boom'));
    expect([boom.code, boom.permanent]).toEqual(['http_error', false]);
    expect((await fail(site.url('/busy'))).permanent).toBe(false);
    const reset = await fail(site.url('/reset'));
    expect([reset.code, reset.permanent]).toEqual(['network_error', false]);
  });

  it('refuses a body announced larger than FILE_MAX_BYTES without reading it', async () => {
    site.route('/huge', (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': String(50_000_000) });
      res.write(Buffer.alloc(16_384));
      // never ends: the client must not wait for the rest
    });
    const err = await fail(site.url('/huge'));
    expect([err.code, err.permanent]).toEqual(['too_large', true]);
    expect(err.message).toBe('file larger than FILE_MAX_BYTES (200000 bytes)');
  });

  it('stops a chunked body as soon as it passes FILE_MAX_BYTES', async () => {
    let written = 0;
    site.route('/endless', async (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/octet-stream' }); // no length: chunked
      const chunk = Buffer.alloc(64 * 1024, 1);
      while (!res.destroyed && written < 50_000_000) {
        written += chunk.length;
        if (!res.write(chunk)) {
          await new Promise<void>((resolve) => {
            const done = () => {
              res.off('drain', done).off('close', done);
              resolve();
            };
            res.on('drain', done).on('close', done);
          });
        }
      }
      res.end();
    });
    const path = target();
    const err = (await download(site.url('/endless'), path, limits, dispatcher).catch((e: unknown) => e)) as FetchError;
    expect(err.code).toBe('too_large');
    // The client stopped reading at the limit: the server got nowhere near its 50 MB (what
    // it wrote beyond 200 KB sits in loopback socket buffers, a few MB at most).
    expect(written).toBeLessThan(20_000_000);
    expect(statSync(path).size).toBeLessThanOrEqual(limits.maxBytes);
  });

  it('times out a provider that never answers, and one that stalls mid-body', async () => {
    site.route('/silent', () => {});
    site.route('/stall', (_q, res) => {
      res.writeHead(200, { 'content-type': 'application/pdf', 'content-length': '1000' });
      res.write('%PDF-1.4 ');
    });
    const silent = await fail(site.url('/silent'));
    expect([silent.code, silent.permanent]).toEqual(['timeout', false]);
    const stall = await fail(site.url('/stall'));
    expect([stall.code, stall.permanent]).toEqual(['timeout', false]);
  });

  it('bounds the whole download, however slowly the bytes trickle in', async () => {
    site.route('/trickle', async (_q, res) => {
      res.writeHead(200, { 'content-type': 'text/plain' });
      for (let i = 0; i < 100 && !res.destroyed; i++) {
        res.write('x');
        await new Promise((r) => setTimeout(r, 100)); // under the idle timeout each time
      }
      res.end();
    });
    const err = await fail(site.url('/trickle'), { ...limits, totalTimeoutMs: 1_000 });
    expect([err.code, err.permanent]).toEqual(['timeout', false]);
  });

  it('accepts a slow provider that stays within the timeouts', async () => {
    site.route('/slow', async (_q, res) => {
      await new Promise((r) => setTimeout(r, 300));
      res.writeHead(200, { 'content-type': 'application/pdf' });
      for (let i = 0; i < pdf.length; i += 25_000) {
        res.write(pdf.subarray(i, i + 25_000));
        await new Promise((r) => setTimeout(r, 100));
      }
      res.end();
    });
    const out = await download(site.url('/slow'), target(), limits, dispatcher);
    expect(out.size).toBe(pdf.length);
  });
});
