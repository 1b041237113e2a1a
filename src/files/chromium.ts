import { existsSync } from 'node:fs';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import puppeteer, { type Browser } from 'puppeteer-core';

/**
 * Headless Chromium for HTML documents: HTML → PDF when force_pdf was on,
 * and a PNG of the first screen as thumbnail. The page is a stored file, so it is rendered
 * with JavaScript off and every network request refused: the one navigation is answered
 * from memory, anything else (images, styles, fonts, beacons) is aborted inside the
 * browser before a connection is made.
 */

export interface ChromiumLaunch {
  executablePath: string;
  headless: true | 'shell';
  args: string[];
  source: 'CHROMIUM_PATH' | '/usr/bin/chromium' | '@sparticuz/chromium';
}

const DEBIAN_CHROMIUM = '/usr/bin/chromium';
const OUR_ARGS = [
  '--no-sandbox', // runs as root in containers; the page has no JS and no network anyway
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
  '--no-first-run',
  '--disable-gpu',
  // Docker gives /dev/shm 64 MB by default, which a large page's render overflows and crashes
  // on; shared memory then goes to /tmp instead.
  '--disable-dev-shm-usage',
  '--disable-extensions',
  '--mute-audio',
];

/** CHROMIUM_PATH, else Debian's chromium when installed, else the binary shipped in npm. */
export async function resolveChromium(chromiumPath: string | undefined, exists = existsSync): Promise<ChromiumLaunch> {
  if (chromiumPath) return { executablePath: chromiumPath, headless: true, args: OUR_ARGS, source: 'CHROMIUM_PATH' };
  if (exists(DEBIAN_CHROMIUM)) return { executablePath: DEBIAN_CHROMIUM, headless: true, args: OUR_ARGS, source: DEBIAN_CHROMIUM };
  const { default: packaged } = await import('@sparticuz/chromium');
  // Its build is headless-shell only; its args are tuned for it (single process), minus the
  // ones that weaken a page's isolation, which a stored page has no use for.
  const weakening = new Set(['--disable-web-security', '--allow-running-insecure-content']);
  const args = [...packaged.args.filter((a) => !weakening.has(a)), ...OUR_ARGS];
  return { executablePath: await packaged.executablePath(), headless: 'shell', args, source: '@sparticuz/chromium' };
}

/**
 * A fresh profile whose network prediction is off ("never"): Chrome's preconnect manager
 * otherwise opens sockets for `<link rel=preconnect|dns-prefetch>` and for the page's
 * links in the network service, where request interception never sees them (only actual
 * requests, such as `<link rel=prefetch>`, reach it and are aborted). The preference is
 * the switch Chrome itself reads (prefetch::IsSomePreloadingEnabled); the headless shell
 * has no preconnect manager at all.
 */
async function quietProfile(): Promise<string> {
  const dir = await mkdtemp(join(tmpdir(), 'docrelay-chromium-'));
  await mkdir(join(dir, 'Default'));
  await writeFile(join(dir, 'Default', 'Preferences'), JSON.stringify({ net: { network_prediction_options: 2 } }));
  return dir;
}

export interface RenderResult {
  pdf?: Buffer;
  png: Buffer;
}

/** Where the stored page pretends to live; `.invalid` never resolves (RFC 2606). */
const PAGE_URL = 'https://document.docrelay.invalid/';
const THUMB_WIDTH = 300;
const VIEWPORT = { width: 800, height: 1035 }; // A4 proportions

/**
 * One browser per process (main.ts builds the renderer, in FileServices), launched on first
 * use and closed after a quiet minute; pages are opened on it (the packaged single-process build crashes on extra browser contexts).
 */
export class HtmlRenderer {
  private browser?: Promise<Browser>;
  private idle?: NodeJS.Timeout;
  private busy = 0;

  constructor(
    private readonly chromiumPath: string | undefined,
    private readonly opts: { idleCloseMs: number; timeoutMs: number } = { idleCloseMs: 60_000, timeoutMs: 60_000 },
    /** Which browser to launch; tests pick the packaged one even where Debian's is installed. */
    private readonly pick: () => Promise<ChromiumLaunch> = () => resolveChromium(chromiumPath),
  ) {}

  async render(html: Buffer, opts: { pdf: boolean; charset?: string }): Promise<RenderResult> {
    this.busy++;
    clearTimeout(this.idle);
    try {
      const browser = await this.launch();
      const page = await browser.newPage();
      try {
        page.setDefaultTimeout(this.opts.timeoutMs);
        await page.setJavaScriptEnabled(false);
        await page.setRequestInterception(true);
        page.on('request', (req) => {
          if (req.isInterceptResolutionHandled()) return;
          if (req.url() === PAGE_URL && req.isNavigationRequest()) {
            void req.respond({
              status: 200,
              contentType: `text/html${opts.charset ? `; charset=${opts.charset}` : ''}`,
              body: html,
            });
          } else {
            void req.abort('blockedbyclient');
          }
        });
        await page.setViewport({ ...VIEWPORT, deviceScaleFactor: THUMB_WIDTH / VIEWPORT.width });
        await page.goto(PAGE_URL, { waitUntil: 'load' });
        const pdf = opts.pdf ? Buffer.from(await page.pdf({ format: 'A4', printBackground: true })) : undefined;
        const png = Buffer.from(await page.screenshot({ type: 'png' }));
        return { pdf, png };
      } finally {
        await page.close().catch(() => {});
      }
    } finally {
      if (--this.busy === 0) {
        this.idle = setTimeout(() => void this.close(), this.opts.idleCloseMs);
        this.idle.unref();
      }
    }
  }

  async close(): Promise<void> {
    clearTimeout(this.idle);
    const b = this.browser;
    this.browser = undefined;
    if (b) await (await b.catch(() => undefined))?.close().catch(() => {});
  }

  private launch(): Promise<Browser> {
    if (!this.browser) {
      const starting = (async () => {
        const c = await this.pick();
        const profile = await quietProfile();
        let browser: Browser;
        try {
          browser = await puppeteer.launch({
            executablePath: c.executablePath,
            headless: c.headless,
            args: c.args,
            timeout: this.opts.timeoutMs,
            userDataDir: profile,
            // puppeteer's own signal handlers would close Chromium (and may end the process)
            // on SIGTERM before main.ts drains: the running jobs must finish rendering first,
            // and main.ts closes the browser itself (FileServices.close).
            handleSIGINT: false,
            handleSIGTERM: false,
            handleSIGHUP: false,
          });
        } catch (err) {
          await rm(profile, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
          throw err;
        }
        browser.on('disconnected', () => {
          if (this.browser === starting) this.browser = undefined;
          // Chromium may still be writing its profile as it exits: best effort, never a rejection.
          rm(profile, { recursive: true, force: true, maxRetries: 3 }).catch(() => {});
        });
        return browser;
      })();
      starting.catch(() => {
        if (this.browser === starting) this.browser = undefined;
      });
      this.browser = starting;
    }
    return this.browser;
  }
}
