import { subscribe, unsubscribe } from 'node:diagnostics_channel';
import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { isPublicAddress } from '../src/net/address.js';
import { createFetchDispatcher, defaultFetchLimits, download, FetchError } from '../src/files/fetch.js';
import { startProviderSite, type ProviderSite } from './helpers/provider.js';

// SSRF protection at its lowest level: the address policy, and proof that
// a refused address is refused before any socket exists — no packet ever leaves.

describe('isPublicAddress', () => {
  it.each([
    '127.0.0.1', '127.1.2.3', '0.0.0.0', '10.0.0.1', '10.255.255.255', '172.16.0.1', '172.31.255.254', '192.168.1.1',
    '100.64.0.1', '100.100.100.200', '169.254.169.254', '169.254.0.1', '224.0.0.1', '239.255.255.250', '255.255.255.255',
    '240.0.0.1', '192.0.2.1', '198.18.0.1', '198.51.100.7', '203.0.113.9', '192.0.0.8',
    '::1', '::', '[::1]', '::ffff:127.0.0.1', '::ffff:7f00:1', '0:0:0:0:0:ffff:a00:1', '::ffff:169.254.169.254',
    '::127.0.0.1', 'fe80::1', 'fe80::1%eth0', 'fc00::1', 'fd00:ec2::254', 'ff02::1', '64:ff9b::a00:1',
    '2002:7f00:1::1', '2001:0:4136:e378::1', '2001:db8::1', 'not-an-ip', '',
  ])('refuses %s', (ip) => {
    expect(isPublicAddress(ip)).toBe(false);
  });

  it.each(['8.8.8.8', '1.1.1.1', '93.184.216.34', '172.32.0.1', '100.128.0.1', '192.169.0.1', '2606:4700:4700::1111', '2a00:1450:4007:80f::200e', '2001:4860:4860::8888'])(
    'allows %s',
    (ip) => {
      expect(isPublicAddress(ip)).toBe(true);
    },
  );
});

describe('the fetch dispatcher', () => {
  let site: ProviderSite;
  let site6: ProviderSite;
  const dir = mkdtempSync(join(tmpdir(), 'docrelay-addr-'));
  const strict = defaultFetchLimits(1_000_000, false);
  const dispatcher = createFetchDispatcher(strict);

  beforeAll(async () => {
    site = await startProviderSite('127.0.0.1');
    site6 = await startProviderSite('::1');
    for (const s of [site, site6]) s.route('/bill.pdf', (_req, res) => res.end('%PDF-1.4 secret'));
  });
  afterAll(async () => {
    await site.close();
    await site6.close();
  });

  /** Every TCP socket this process creates while `fn` runs. */
  async function socketsDuring(fn: () => Promise<unknown>): Promise<number> {
    let n = 0;
    const onSocket = () => n++;
    subscribe('net.client.socket', onSocket);
    try {
      await fn();
    } finally {
      unsubscribe('net.client.socket', onSocket);
    }
    return n;
  }

  async function refused(url: string): Promise<FetchError> {
    const err = await download(url, join(dir, 'f'), strict, dispatcher).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    return err as FetchError;
  }

  it.each(['http://10.0.0.1/bill.pdf', 'http://169.254.169.254/latest/meta-data/', 'http://[fd00:ec2::254]/', 'http://100.100.100.200/', 'http://0x7f.1/'])(
    'refuses the literal address of %s without creating a socket',
    async (url) => {
      let err: FetchError | undefined;
      const sockets = await socketsDuring(async () => {
        err = await refused(url);
      });
      expect(err!.code).toBe('blocked_address');
      expect(err!.permanent).toBe(true);
      expect(err!.message).toMatch(/private or reserved address/);
      expect(sockets).toBe(0);
    },
  );

  it('refuses loopback in every spelling, and the loopback sites see no connection', async () => {
    const urls = [
      site.url('/bill.pdf'),
      `http://[::ffff:127.0.0.1]:${site.port}/bill.pdf`,
      `http://2130706433:${site.port}/bill.pdf`,
      `http://localhost:${site.port}/bill.pdf`,
      site6.url('/bill.pdf'),
      `http://localhost:${site6.port}/bill.pdf`,
    ];
    for (const url of urls) {
      const err = await refused(url);
      expect(err.code, url).toBe('blocked_address');
    }
    expect((await refused(`http://localhost:${site.port}/`)).message).toMatch(/^refused: localhost resolves to (127\.0\.0\.1|::1)/);
    expect(site.connections()).toBe(0);
    expect(site6.connections()).toBe(0);
  });

  it('checks every redirect hop again: a redirect to a refused address ends the download', async () => {
    // A policy that allows 127.0.0.1 only stands in for "public" here, since tests reach
    // nothing but loopback; 127.0.0.2 plays the private target of the redirect.
    const only127001 = createFetchDispatcher(strict, (ip) => ip === '127.0.0.1');
    site.route('/hop', (_req, res) => res.writeHead(302, { location: `http://127.0.0.2:${site.port}/bill.pdf` }).end());
    const err = await download(site.url('/hop'), join(dir, 'g'), strict, only127001).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(FetchError);
    expect((err as FetchError).code).toBe('blocked_address');
    expect((err as FetchError).message).toMatch(/127\.0\.0\.2/);
    expect(site.hits('/hop')).toBe(1);
    expect(site.hits('/bill.pdf')).toBe(0);
  });

  it('refuses schemes other than http and https', async () => {
    for (const url of ['file:///etc/passwd', 'ftp://example.com/x', 'gopher://127.0.0.1:70/', 'not a url']) {
      const err = await refused(url);
      expect(err.code).toBe('bad_url');
      expect(err.permanent).toBe(true);
    }
  });
});
