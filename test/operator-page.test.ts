import { mkdirSync } from 'node:fs';
import type { AddressInfo } from 'node:net';
import { serve, type ServerType } from '@hono/node-server';
import puppeteer, { type Browser, type Page } from 'puppeteer-core';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { resolveChromium } from '../src/files/chromium.js';
import { newSession } from '../src/page/session.js';
import { ADMIN_TOKEN, createTestContext, type TestContext } from './helpers/context.js';
import { sql } from 'drizzle-orm';
import { createEndpoint } from './helpers/notify.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { syncedPayload } from './helpers/webhooks.js';

/**
 * README "Operating it", `GET /`: the operator page driven in a real headless Chromium (the one
 * the service renders HTML bills with) against the real app, worker and a receiver on
 * loopback. Set DOCRELAY_SCREENSHOTS=<dir> to save the page at desktop and phone widths.
 */
let ctx: TestContext;
let server: ServerType;
let base: string;
let receiver: Receiver;
let browser: Browser;
let endpointId: string;
let receiverUp = false;
let provider: ProviderSite;
let failedJobId: string;

beforeAll(async () => {
  // Gone (410) until the test "fixes" it: the endpoint is disabled and its message failed.
  provider = await startProviderSite();
  receiver = await startReceiver(() => (receiverUp ? { status: 200 } : { status: 410 }));
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  await new Promise<void>((ready) => {
    server = serve({ fetch: ctx.app.fetch, port: 0, hostname: '127.0.0.1' }, () => ready());
  });
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
  endpointId = (await createEndpoint(ctx, { url: receiver.url, description: 'Billing backend' })).id;
  expect((await ctx.request('POST', '/config', { body: { 'captcha.enabled': '1' } })).status).toBe(200);
  await ctx.startWorker();
  // One healthy connection with a bill, one stuck behind a captcha.
  await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ idWebhookData: 1, connectionId: 31, subscriptions: [{ id: 11, documents: [{ id: 111, url: provider.url('/bill-111.pdf') }] }] }));
  await ctx.sendWebhook(
    'CONNECTION_SYNCED',
    syncedPayload({ idWebhookData: 2, connectionId: 32, state: 'websiteUnavailable', captchaRequired: true, subscriptions: [] }),
  );
  // The receiver answered 410: the endpoint is disabled and the message failed.
  await waitUntil(async () => {
    const res = await ctx.request('GET', '/webhook-endpoints');
    return (await res.json()).endpoints.find((e: any) => e.id === endpointId)?.disabled;
  }, 20_000, 'the endpoint to be disabled');

  // The bill's download was refused (404, permanent): its file failed.
  await waitUntil(async () => (await (await ctx.request('GET', '/users/7/documents/111')).json()).file.status === 'failed', 20_000, 'the file to fail');
  // And a job that failed for good.
  const [job] = await ctx.deps.db.execute<{ id: string }>(sql`select (graphile_worker.add_job('sweep_stranded_messages', '{}'::json, run_at := now() + interval '1 hour')).id::text as id`);
  failedJobId = job.id;
  await ctx.deps.db.execute(sql`select graphile_worker.permanently_fail_jobs(array[${failedJobId}::bigint], 'Error: database was restarting')`);

  const chromium = await resolveChromium(ctx.config.chromiumPath);
  browser = await puppeteer.launch({ executablePath: chromium.executablePath, headless: chromium.headless, args: chromium.args });
});
afterAll(async () => {
  await browser?.close();
  await new Promise<void>((done) => (server ? server.close(() => done()) : done()));
  await ctx?.close();
  await receiver?.close();
  await provider?.close();
});

async function signIn(page: Page, token: string) {
  await page.goto(`${base}/`);
  expect(new URL(page.url()).pathname).toBe('/login');
  await page.type('#token', token);
  const [res] = await Promise.all([page.waitForNavigation(), page.click('button[type=submit]')]);
  return res;
}

const text = (page: Page, selector: string) => page.$eval(selector, (el) => (el as HTMLElement).innerText);

describe('the operator page in a real browser', () => {
  let page: Page;
  beforeAll(async () => {
    page = await browser.newPage();
    await page.setViewport({ width: 1280, height: 900 });
  });

  it('refuses a wrong token and sets no session', async () => {
    const res = await signIn(page, 'not-the-admin-token-at-all');
    expect(res?.status()).toBe(401);
    expect(await text(page, '[role=alert]')).toContain('not the admin token');
    expect((await page.cookies()).some((c) => c.name === 'docrelay_session')).toBe(false);
  });

  it('signs in with the admin token: an HttpOnly, SameSite=Strict session that is not the token', async () => {
    const res = await signIn(page, ADMIN_TOKEN);
    expect(res?.status()).toBe(200);
    expect(new URL(page.url()).pathname).toBe('/');
    const session = (await page.cookies()).find((c) => c.name === 'docrelay_session')!;
    expect(session.httpOnly).toBe(true);
    expect(session.sameSite).toBe('Strict');
    expect(session.value).not.toContain(ADMIN_TOKEN);
    // Every form carries the CSRF token.
    const forms = await page.$$eval('form[method=post]', (fs) => fs.map((f) => (f.querySelector('input[name=_csrf]') as HTMLInputElement | null)?.value ?? ''));
    expect(forms.length).toBeGreaterThan(1);
    for (const token of forms) expect(token.length).toBeGreaterThan(20);
  });

  it('shows the flow, the stuck captcha connection and the failing endpoint', async () => {
    expect(await text(page, '#flow + dl')).toMatch(/Webhooks in\s+2/);
    const stuck = await text(page, 'tr[data-connection="32"]');
    expect(stuck).toContain('32');
    expect(stuck).toMatch(/\d{4}-\d{2}-\d{2} \d{2}:\d{2} UTC/); // its next retry
    expect(await page.$('svg[role=img] polyline')).not.toBeNull();
    const endpoint = `article[data-endpoint="${endpointId}"]`;
    expect(await text(page, `${endpoint} [data-status]`)).toContain('disabled');
    expect(await text(page, `${endpoint} tbody`)).toContain('410');
    // Every input has a label, and the actions are real buttons.
    const unlabelled = await page.$$eval('input:not([type=hidden])', (inputs) => inputs.filter((i) => !i.id || !document.querySelector(`label[for="${i.id}"]`)).length);
    expect(unlabelled).toBe(0);
    await saveScreenshots(page);
  });

  it('replays the failed message from its button, and the delivery appears', async () => {
    receiverUp = true;
    const before = receiver.received.length;
    // The message that met the 410, and those of the events recorded while it was disabled.
    const [{ failed }] = await ctx.deps.db.execute<{ failed: number }>(sql`select count(*)::int as failed from messages where endpoint_id = ${endpointId} and status = 'failed'`);
    const endpoint = `article[data-endpoint="${endpointId}"]`;
    // Keyboard only: focus the Replay button and press Enter.
    await page.focus(`${endpoint} form[action$="/replay"] button`);
    const [res] = await Promise.all([page.waitForNavigation(), page.keyboard.press('Enter')]);
    expect(res?.status()).toBe(200);
    expect(failed).toBeGreaterThan(0);
    expect(await text(page, '.notice')).toContain(`${failed} failed message`);
    await receiver.waitFor(before + 1);
    const row = await waitUntil(async () => {
      await page.reload();
      const rows = await page.$$eval(`${endpoint} tbody tr`, (trs) => trs.map((tr) => (tr as HTMLElement).innerText));
      // The replay also sends the events recorded while it was disabled: find the replayed message's row.
      return rows.find((r) => r.includes('HTTP 200') && r.includes('subscription.created'));
    }, 20_000, 'the successful delivery on the page');
    expect(row).toContain('subscription.created');
    expect(await text(page, `${endpoint} [data-status]`)).toBe('ok');
  });

  it('retries a failed job and a failed file from their buttons', async () => {
    expect(await text(page, `tr[data-job="${failedJobId}"]`)).toContain('database was restarting');
    await Promise.all([page.waitForNavigation(), page.click(`tr[data-job="${failedJobId}"] form[action$="/retry"] button`)]);
    expect(await text(page, '.notice')).toContain(`Job ${failedJobId} queued again`);
    expect(await page.$(`tr[data-job="${failedJobId}"]`)).toBeNull();

    expect(await text(page, 'tr[data-file="111"]')).toContain('404');
    provider.route('/bill-111.pdf', send(await makePdf(['Bill 111']), 'application/pdf'));
    await Promise.all([page.waitForNavigation(), page.click('tr[data-file="111"] button')]);
    expect(await text(page, '.notice')).toContain('document 111 will be fetched again');
    await waitUntil(async () => (await (await ctx.request('GET', '/users/7/documents/111')).json()).file.status === 'ready', 20_000, 'the file to be ready');
    await page.reload();
    expect(await page.$('tr[data-file="111"]')).toBeNull();
  });

  it('refuses a form posted without the CSRF token, and one with a wrong token', async () => {
    const before = receiver.received.length;
    for (const token of [null, 'forged-token-forged-token-forged-token-xx']) {
      const [res] = await Promise.all([
        page.waitForNavigation(),
        page.evaluate(
          (action, token) => {
            const form = document.createElement('form');
            form.method = 'post';
            form.action = action;
            if (token) form.innerHTML = `<input type="hidden" name="_csrf" value="${token}">`;
            document.body.append(form);
            form.submit();
          },
          `/ui/endpoints/${endpointId}/replay`,
          token,
        ),
      ]);
      expect(res?.status()).toBe(403);
      expect(await page.content()).toContain('CSRF');
      await page.goto(`${base}/`);
    }
    expect(receiver.received.length).toBe(before);
  });

  it('signs out: the page asks for the token again', async () => {
    await Promise.all([page.waitForNavigation(), page.click('header form button[type=submit]')]);
    expect(new URL(page.url()).pathname).toBe('/login');
    await page.goto(`${base}/`);
    expect(new URL(page.url()).pathname).toBe('/login');
  });
});

describe('sessions and forms without a browser', () => {
  it('a cookie signed under another admin token, or tampered with, is no session', async () => {
    const other = newSession('another-admin-token-0123456789').cookie;
    const mine = newSession(ADMIN_TOKEN).cookie;
    const tampered = mine.replace(/\.(\d+)\./, (_m, exp) => `.${Number(exp) + 999999}.`);
    for (const cookie of [other, tampered, 'garbage', '']) {
      const res = await ctx.app.request('/', { headers: { cookie: `docrelay_session=${cookie}` } });
      expect(res.status).toBe(303);
      expect(res.headers.get('location')).toBe('/login');
    }
    const ok = await ctx.app.request('/', { headers: { cookie: `docrelay_session=${mine}` } });
    expect(ok.status).toBe(200);
  });

  it('actions refuse a request without a session (401) and change nothing', async () => {
    const res = await ctx.app.request(`/ui/endpoints/${endpointId}/replay`, { method: 'POST', body: new URLSearchParams({ _csrf: 'x' }) });
    expect(res.status).toBe(401);
  });

  it('the bearer token is not a session: the page still asks to sign in', async () => {
    const res = await ctx.app.request('/', { headers: { authorization: `Bearer ${ADMIN_TOKEN}` } });
    expect(res.status).toBe(303);
  });
});

async function saveScreenshots(page: Page) {
  const dir = process.env.DOCRELAY_SCREENSHOTS;
  if (!dir) return;
  mkdirSync(dir, { recursive: true });
  await page.screenshot({ path: `${dir}/operator-page-desktop.png`, fullPage: true });
  await page.setViewport({ width: 390, height: 844, isMobile: true, hasTouch: true, deviceScaleFactor: 2 });
  await page.reload();
  await page.screenshot({ path: `${dir}/operator-page-phone.png`, fullPage: true });
  await page.setViewport({ width: 1280, height: 900 });
  await page.reload();
}
