import { existsSync } from 'node:fs';
import { createServer, type AddressInfo } from 'node:net';
import { afterAll, describe, expect, it } from 'vitest';
import { HtmlRenderer, resolveChromium } from '../src/files/chromium.js';
import { pdfPageText, pdfThumbnail } from '../src/files/pdf.js';
import { makePdf } from './helpers/provider.js';

// Real headless Chromium, both ways the service can get one: the default (CHROMIUM_PATH,
// else Debian's /usr/bin/chromium, else the packaged one) and the binary shipped in npm
// @sparticuz/chromium, which is what runs wherever Debian's is missing. Neither ever skips.

const renderers: HtmlRenderer[] = [];
afterAll(() => Promise.all(renderers.map((r) => r.close())));

const page = Buffer.from(
  '<html><head><meta charset="utf-8"></head><body><h1>Quittance de loyer</h1><p>Montant réglé : 850,00 €</p>' +
    '<script>document.body.textContent = "SCRIPT RAN"</script></body></html>',
);

describe('Chromium', () => {
  it('picks CHROMIUM_PATH, else Debian chromium, else the packaged binary', async () => {
    expect((await resolveChromium('/opt/chrome/chrome')).source).toBe('CHROMIUM_PATH');
    expect((await resolveChromium(undefined, () => true)).executablePath).toBe('/usr/bin/chromium');
    const packaged = await resolveChromium(undefined, () => false);
    expect(packaged.source).toBe('@sparticuz/chromium');
    expect(existsSync(packaged.executablePath)).toBe(true);
    expect(packaged.args).not.toContain('--disable-web-security');
  });

  it('launches every Chromium with its shared memory outside /dev/shm (64 MB in Docker)', async () => {
    for (const c of [await resolveChromium('/opt/chrome/chrome'), await resolveChromium(undefined, () => true), await resolveChromium(undefined, () => false)]) {
      expect(c.args, c.source).toContain('--disable-dev-shm-usage');
    }
  });

  const launches = [
    ['the default Chromium', () => resolveChromium(process.env.CHROMIUM_PATH)],
    ['the packaged @sparticuz/chromium', () => resolveChromium(undefined, () => false)],
  ] as const;
  it.each(launches)('renders a stored page to PDF and PNG with %s, without running its script', async (_name, pick) => {
    const renderer = new HtmlRenderer(undefined, { idleCloseMs: 60_000, timeoutMs: 60_000 }, pick);
    renderers.push(renderer);
    const signals = ['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s));
    const { pdf, png } = await renderer.render(page, { pdf: true });
    // Launching adds no signal handler: on SIGTERM, main.ts drains first and closes Chromium itself.
    expect(['SIGINT', 'SIGTERM', 'SIGHUP'].map((s) => process.listenerCount(s))).toEqual(signals);
    expect(pdf!.subarray(0, 5).toString()).toBe('%PDF-');
    const text = await pdfPageText(pdf!);
    expect(text).toContain('Quittance de loyer');
    expect(text).toContain('850,00 €');
    expect(text).not.toContain('SCRIPT RAN');
    expect(png.subarray(1, 4).toString()).toBe('PNG');
    expect(png.readUInt32BE(16)).toBe(300);
    // The browser is kept for the next page.
    const again = await renderer.render(Buffer.from('<p>second</p>'), { pdf: false });
    expect(again.pdf).toBeUndefined();
    expect(again.png.subarray(1, 4).toString()).toBe('PNG');
  }, 60_000);

  it.each(launches)('opens no connection for preconnect, dns-prefetch and prefetch links with %s', async (_name, pick) => {
    // A bare TCP listener: it counts sockets, which Chrome's preconnects open without a request.
    let connections = 0;
    const listener = createServer((socket) => {
      connections++;
      socket.destroy();
    });
    await new Promise<void>((resolve) => listener.listen(0, '127.0.0.1', resolve));
    try {
      const { port } = listener.address() as AddressInfo;
      const links = ['preconnect', 'dns-prefetch', 'prefetch', 'preload', 'prerender']
        .flatMap((rel) => [`http://127.0.0.1:${port}/${rel}`, `http://localhost:${port}/${rel}`].map((href) => `<link rel="${rel}" href="${href}" as="fetch">`))
        .join('');
      const html = `<html><head>${links}</head><body><p>Facture</p><a href="http://127.0.0.1:${port}/next">suite</a></body></html>`;
      const renderer = new HtmlRenderer(undefined, { idleCloseMs: 60_000, timeoutMs: 60_000 }, pick);
      renderers.push(renderer);
      const { pdf } = await renderer.render(Buffer.from(html), { pdf: true });
      expect(pdf!.subarray(0, 5).toString()).toBe('%PDF-');
      await renderer.close(); // the browser has exited: nothing it started is still to come
      expect(connections).toBe(0);
    } finally {
      await new Promise<void>((resolve) => listener.close(() => resolve()));
    }
  }, 60_000);
});

describe('pdf.js thumbnails', () => {
  it('draws the first page of a PDF as a 300 px wide PNG', async () => {
    const png = await pdfThumbnail(await makePdf(['First page', 'Second page']));
    expect(png.subarray(0, 8).toString('hex')).toBe('89504e470d0a1a0a');
    expect(png.readUInt32BE(16)).toBe(300);
    expect(png.readUInt32BE(20)).toBe(Math.ceil((300 * 842) / 595)); // A4 portrait, 425 px
  });

  it('rejects bytes that are not a PDF', async () => {
    await expect(pdfThumbnail(Buffer.from('%PDF-1.4 garbage'))).rejects.toThrow();
  });
});
