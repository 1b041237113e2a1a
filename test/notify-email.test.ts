import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { enqueue } from '../src/jobs/enqueue.js';
import { createTestContext, type TestContext } from './helpers/context.js';
import { waitForIdleQueue } from './helpers/jobs.js';
import { makeDueNow } from './helpers/notify.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { waitUntil } from './helpers/receiver.js';
import { startSmtp, type SmtpSink } from './helpers/smtp.js';
import { syncedPayload } from './helpers/webhooks.js';

// Email delivery: a real SMTP server on loopback receives the mails; mailparser reads them.
let ctx: TestContext;
let noSmtp: TestContext;
let smtp: SmtpSink;
let site: ProviderSite;
let pdf: Buffer;
beforeAll(async () => {
  smtp = await startSmtp();
  site = await startProviderSite();
  pdf = await makePdf(['Facture novembre 2026']);
  site.route('/bill.pdf', send(pdf, 'application/pdf'));
  [ctx, noSmtp] = await Promise.all([
    createTestContext({ SMTP_URL: smtp.url, MAIL_FROM: 'Bills <bills@docrelay.test>', FETCH_ALLOW_PRIVATE_NETWORKS: '1' }),
    createTestContext(),
  ]);
  await ctx.startWorker();
});
afterAll(async () => {
  await Promise.all([ctx.close(), noSmtp.close()]);
  await Promise.all([smtp.close(), site.close()]);
});

const deliveryRow = (c: TestContext, documentId: number) =>
  c.deps.db.execute<{ status: string; error: string | null; attempts: number; message_id: string }>(sql`
    select status, error, attempts, message_id from email_deliveries where document_id = ${documentId}`).then((r) => r[0]);

async function setEmail(c: TestContext, user: number, body: unknown) {
  await c.request('POST', `/users/${user}/token`);
  return c.request('PUT', `/users/${user}/email-delivery`, { body });
}

describe('email delivery settings', () => {
  it('PUT, GET and DELETE, for the user itself or the admin; 404 across users', async () => {
    const token = (await (await ctx.request('POST', '/users/70/token')).json()).token;
    await ctx.request('POST', '/users/170/token');
    expect((await ctx.request('GET', '/users/70/email-delivery')).status).toBe(404);
    const put = await ctx.request('PUT', '/users/me/email-delivery', { token, body: { to: 'ann@example.com', document_types: ['bill', 'invoice'] } });
    expect(put.status).toBe(200);
    expect(await put.json()).toMatchObject({ id_user: 70, to: 'ann@example.com', document_types: ['bill', 'invoice'], status: 'active' });
    expect(await (await ctx.request('GET', '/users/70/email-delivery')).json()).toMatchObject({ to: 'ann@example.com' });
    const other = await ctx.request('PUT', '/users/170/email-delivery', { token, body: { to: 'x@example.com' } });
    expect(other.status).toBe(404);
    const bad = await ctx.request('PUT', '/users/70/email-delivery', { body: { to: 'not-an-address' } });
    expect(bad.status).toBe(400);
    expect((await bad.json()).error.code).toBe('invalid_payload');
    expect((await (await ctx.request('GET', '/users/70/email-delivery')).json()).to).toBe('ann@example.com');
    expect((await ctx.request('DELETE', '/users/me/email-delivery', { token })).status).toBe(204);
    expect((await ctx.request('GET', '/users/70/email-delivery')).status).toBe(404);
  });
});

describe('document mails', () => {
  it('mails an announced bill once, PDF attached, readable subject and body, Message-ID from the document', async () => {
    expect((await setEmail(ctx, 71, { to: 'bob@example.com' })).status).toBe(200);
    const before = smtp.mails.length;
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({
      userId: 71, connectionId: 710,
      subscriptions: [{ id: 7100, label: 'Fibre', documents: [{ id: 71000, name: 'Facture novembre', url: site.url('/bill.pdf'), total_amount: 42.5 }, { id: 71001, type: 'payslip' }] }],
    }));
    await waitUntil(async () => smtp.mails.length > before, 25_000, 'a mail');
    const mail = smtp.mails.at(-1)!;
    expect(mail.messageId).toBe('<document-71000.user-71@docrelay>');
    expect(mail.subject).toBe('Acme — Facture novembre — €42.50 — 2026-11-01');
    expect(mail.from?.value[0]).toMatchObject({ name: 'Bills', address: 'bills@docrelay.test' });
    expect((mail.to as { text: string }).text).toBe('bob@example.com');
    expect(mail.text).toContain('Subscription: Fibre');
    expect(mail.text).toContain('Issuer: Acme');
    expect(mail.attachments).toHaveLength(1);
    expect(mail.attachments[0].contentType).toBe('application/pdf');
    expect(mail.attachments[0].filename).toBe('Facture_novembre.pdf');
    expect(Buffer.compare(mail.attachments[0].content, pdf)).toBe(0);
    await waitUntil(async () => (await deliveryRow(ctx, 71000))?.status === 'sent', 5_000, 'sent');

    // Announcing again (a re-run job) sends nothing more; the payslip was never mailed.
    await enqueue(ctx.deps.db, 'announce_document', { documentId: 71000 });
    await waitForIdleQueue(ctx.deps.db, ['announce_document', 'send_document_email']);
    expect(smtp.mails.filter((m) => m.messageId === '<document-71000.user-71@docrelay>')).toHaveLength(1);
    expect(await deliveryRow(ctx, 71001)).toBeUndefined();
  });

  it('keeps a non-ASCII file name (RFC 2231), and links an unconverted HTML page rather than attach it', async () => {
    site.route('/bill.html', send(Buffer.from('<!doctype html><html><body><h1>Facture</h1><script>alert(1)</script></body></html>'), 'text/html'));
    expect((await setEmail(ctx, 76, { to: 'hal@example.com' })).status).toBe(200);
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({
      userId: 76, connectionId: 760,
      subscriptions: [{ id: 7600, documents: [{ id: 76000, name: 'Счёт за ноябрь', url: site.url('/bill.pdf') }, { id: 76001, name: 'Λογαριασμός', url: site.url('/bill.html') }] }],
    }));
    const mailOf = (id: number) => smtp.mails.find((m) => m.messageId === `<document-${id}.user-76@docrelay>`);
    await waitUntil(async () => mailOf(76000) && mailOf(76001), 60_000, 'both mails');
    const pdfMail = mailOf(76000)!;
    expect(pdfMail.attachments.map((a) => a.filename)).toEqual(['Счёт_за_ноябрь.pdf']);
    const htmlMail = mailOf(76001)!;
    expect(htmlMail.attachments).toHaveLength(0);
    expect(htmlMail.text).toMatch(/web page \(HTML\), not attached/);
    const link = /(http\S+\/files\/76001\?exp=\d+&sig=\S+)/.exec(htmlMail.text ?? '')?.[1];
    expect(link).toBeDefined();
    const served = await ctx.app.request(new URL(link!).pathname + new URL(link!).search);
    expect(served.status).toBe(200);
    expect(served.headers.get('content-type')).toMatch(/text\/html/);
  });

  it('retries after a transient SMTP error with the same Message-ID, and sends one mail', async () => {
    expect((await setEmail(ctx, 72, { to: 'cy@example.com' })).status).toBe(200);
    const start = smtp.attempts;
    smtp.reject = (n) => (n === start + 1 ? { code: 451, message: 'try again later' } : null);
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 72, connectionId: 720, subscriptions: [{ id: 7200, documents: [{ id: 72000 }] }] }));
    const failed = await waitUntil(async () => {
      const row = await deliveryRow(ctx, 72000);
      return row && row.attempts === 1 && row.status !== 'sending' ? row : null;
    }, 20_000, 'first attempt');
    expect(failed.status).toBe('pending');
    expect(failed.error).toMatch(/try again later/);
    await waitUntil(async () => {
      await makeDueNow(ctx, 'send_document_email');
      return (await deliveryRow(ctx, 72000))?.status === 'sent';
    }, 20_000, 'sent after retry');
    const mine = smtp.mails.filter((m) => m.messageId === '<document-72000.user-72@docrelay>');
    expect(mine).toHaveLength(1);
    expect(smtp.attempts - start).toBe(2);
    expect((await deliveryRow(ctx, 72000)).attempts).toBe(2);
    smtp.reject = () => null;
  });

  it('gives up at once on a permanent SMTP refusal', async () => {
    expect((await setEmail(ctx, 73, { to: 'dee@example.com' })).status).toBe(200);
    smtp.reject = () => ({ code: 550, message: 'mailbox unavailable' });
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 73, connectionId: 730, subscriptions: [{ id: 7300, documents: [{ id: 73000 }] }] }));
    const row = await waitUntil(async () => {
      const r = await deliveryRow(ctx, 73000);
      return r?.status === 'failed' ? r : null;
    }, 20_000, 'failed');
    smtp.reject = () => null;
    expect(row.error).toMatch(/mailbox unavailable/);
    expect(row.attempts).toBe(1);
  });

  it('mails only the document types the setting asks for', async () => {
    expect((await setEmail(ctx, 74, { to: 'eve@example.com', document_types: ['invoice'] })).status).toBe(200);
    await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 74, connectionId: 740, subscriptions: [{ id: 7400, documents: [{ id: 74000, type: 'bill' }] }] }));
    await waitUntil(async () => {
      const [r] = await ctx.deps.db.execute<{ n: number }>(sql`select count(*)::int as n from events where dedupe_key = 'document.created:74000'`);
      return r.n === 1;
    }, 20_000, 'announced');
    await waitForIdleQueue(ctx.deps.db, ['announce_document', 'send_document_email']);
    expect(await deliveryRow(ctx, 74000)).toBeUndefined();
  });

  it('says smtp_not_configured when SMTP_URL is unset', async () => {
    const res = await setEmail(noSmtp, 75, { to: 'fay@example.com' });
    expect(res.status).toBe(200);
    expect((await res.json()).status).toBe('smtp_not_configured');
    await noSmtp.startWorker();
    await noSmtp.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 75, connectionId: 750, subscriptions: [{ id: 7500, documents: [{ id: 75000 }] }] }));
    const row = await waitUntil(async () => {
      const r = await deliveryRow(noSmtp, 75000);
      return r?.status === 'failed' ? r : null;
    }, 20_000, 'smtp_not_configured');
    expect(row.error).toBe('smtp_not_configured');
  });
});
