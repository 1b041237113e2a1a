import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint } from './helpers/notify.js';
import { startProviderSite, type ProviderSite } from './helpers/provider.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { startSmtp, type SmtpSink } from './helpers/smtp.js';
import { syncedPayload } from './helpers/webhooks.js';

// A slow provider starves nothing (issue 9): file downloads have a pool of their own
// (FILE_CONCURRENCY), so downloads that trickle one byte every few seconds — each under
// the idle timeout, for up to FILE_DOWNLOAD_TIMEOUT_S — hold only that pool's slots while
// deliveries and mails go on in the other one (WORKER_CONCURRENCY).
let ctx: TestContext;
let site: ProviderSite;
let receiver: Receiver;
let smtp: SmtpSink;
let trickling = 0;
beforeAll(async () => {
  [site, receiver, smtp] = await Promise.all([startProviderSite(), startReceiver(), startSmtp()]);
  site.route('/slow.pdf', async (_req, res) => {
    trickling++;
    res.on('close', () => trickling--);
    res.writeHead(200, { 'content-type': 'application/pdf' });
    while (!res.destroyed) {
      res.write('%');
      await new Promise((r) => setTimeout(r, 3_000)); // under the 30 s idle timeout each time
    }
  });
  ctx = await createTestContext({ FETCH_ALLOW_PRIVATE_NETWORKS: '1', SMTP_URL: smtp.url, WORKER_CONCURRENCY: '2', FILE_CONCURRENCY: '4' });
  await ctx.startWorker();
});
afterAll(async () => {
  await site.close(); // the hanging downloads end now, so the worker can stop
  await ctx.close();
  await Promise.all([receiver.close(), smtp.close()]);
});

it('delivers webhooks and mails while eight downloads trickle', async () => {
  const endpoint = await createEndpoint(ctx, { url: receiver.url, events: ['document.created'] });
  expect(endpoint.id).toBeTruthy();
  expect((await ctx.request('PUT', '/users/81/email-delivery', { body: { to: 'ann@example.com' } })).status).toBe(200);

  // Eight syncs of one document each: eight file jobs, more than every slot of both pools.
  for (let i = 0; i < 8; i++) {
    const res = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 80, connectionId: 800 + i, subscriptions: [{ id: 8000 + i, documents: [{ id: 80_000 + i, url: `${site.url('/slow.pdf')}?n=${i}` }] }] }));
    expect(res.status).toBe(200);
  }
  // Every slot of the file pool holds a download that will not end soon.
  await waitUntil(async () => trickling === 4, 20_000, 'four trickling downloads');

  const second = await ctx.sendWebhook('CONNECTION_SYNCED', syncedPayload({ userId: 81, connectionId: 810, subscriptions: [{ id: 8100, documents: [{ id: 81_000 }] }] }));
  expect(second.status).toBe(200);
  const delivered = await waitUntil(
    async () => receiver.received.find((r) => JSON.parse(r.body).data.document.id === 81_000),
    15_000,
    'document.created of the fresh bill',
  );
  expect(JSON.parse(delivered.body).type).toBe('document.created');
  const mail = await waitUntil(async () => smtp.mails.find((m) => m.messageId === '<document-81000.user-81@docrelay>'), 15_000, 'its mail');
  expect(mail.subject).toContain('Bill 81000');

  // The downloads were still hanging all along: nothing of the slow sync was settled or announced.
  expect(trickling).toBe(4);
  const [{ pending }] = await ctx.deps.db.execute<{ pending: number }>(sql`
    select count(*)::int as pending from document_files where document_id between 80000 and 80007 and status = 'pending'`);
  expect(pending).toBe(8);
  expect(receiver.received.some((r) => JSON.parse(r.body).data.document.id < 81_000)).toBe(false);
});
