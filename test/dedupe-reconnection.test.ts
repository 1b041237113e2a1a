import { sql } from 'drizzle-orm';
import { afterAll, beforeAll, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { createEndpoint } from './helpers/notify.js';
import { makePdf, send, startProviderSite, type ProviderSite } from './helpers/provider.js';
import { startReceiver, waitUntil, type Receiver } from './helpers/receiver.js';
import { startSmtp, type SmtpSink } from './helpers/smtp.js';

// "A bill is announced once", the reconnection story, end to end: the real worker, file downloads from a
// provider site on loopback, customer webhooks to a receiver on loopback, mails to a real
// SMTP server. The user's connection breaks, the user deletes it and connects the same
// provider again: the aggregator lists the same 40 bills under new ids, plus 2 new ones.
// The customer hears about the 2 new ones only.
let ctx: TestContext;
let site: ProviderSite;
let smtp: SmtpSink;
let all: Receiver; // an endpoint with events = [] (all)
let dups: Receiver; // an endpoint that opts in to document.duplicate
beforeAll(async () => {
  [site, smtp, all, dups] = await Promise.all([startProviderSite(), startSmtp(), startReceiver(), startReceiver()]);
  ctx = await createTestContext({ SMTP_URL: smtp.url, MAIL_FROM: 'bills@docrelay.test', FETCH_ALLOW_PRIVATE_NETWORKS: '1' });
  await createEndpoint(ctx, { url: all.url });
  await createEndpoint(ctx, { url: dups.url, events: ['document.duplicate'] });
  await ctx.request('POST', '/users/7/token');
  expect((await ctx.request('PUT', '/users/7/email-delivery', { body: { to: 'ann@example.com' } })).status).toBe(200);
  await ctx.startWorker();
}, 120_000);
afterAll(async () => {
  await ctx.close();
  await Promise.all([site.close(), smtp.close(), all.close(), dups.close()]);
});

/**
 * Bill i: 0–19 come back with the same PDF (same bytes), 20–29 with a PDF the provider
 * rendered again (other bytes, same fields), 30–39 without a file; 40 and 41 are new.
 */
const amount = (i: number) => Math.round((30 + i * 1.37) * 100) / 100;
const month = (i: number) => `${2023 + Math.floor(i / 12)}-${String((i % 12) + 1).padStart(2, '0')}-01`;

function sync(connectionId: number, subscriptionId: number, firstDocId: number, bills: number[], lastUpdate: string) {
  return {
    user: { id: 7 },
    connection: {
      id: connectionId, id_user: 7, id_connector: 40, state: null, error_message: null,
      last_update: lastUpdate, next_try: null, active: true, captcha_required: false,
      subscriptions: [{
        id: subscriptionId, id_connection: connectionId, id_user: 7, number: 'EZ42250022314',
        label: 'Contrat EZ4225', subscriber: 'Mr John Doe', validity: null, renewdate: null,
        documents: bills.map((i) => ({
          id: firstDocId + i, id_subscription: subscriptionId, name: `Facture ${month(i)}`, type: 'bill',
          date: month(i), duedate: null, number: `FA-${1000 + i}`, issuer: 'Acme',
          total_amount: amount(i), untaxed_amount: null, vat: null, currency: { id: 'EUR', symbol: '€' },
          url: i >= 30 && i < 40 ? null : site.url(`/c${connectionId}/bill-${i}.pdf`),
          has_file_on_website: !(i >= 30 && i < 40),
        })),
      }],
    },
  };
}

const typesOf = (r: Receiver) => r.received.map((m) => JSON.parse(m.body) as { type: string; data: any });
const created = (r: Receiver) => typesOf(r).filter((m) => m.type === 'document.created').map((m) => m.data.document.id as number);

/** Every job that could still send something has run. */
const drained = async () => {
  const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`
    select count(*)::int as n from graphile_worker.jobs
    where task_identifier in ('fetch_document_files', 'announce_document', 'deliver_messages', 'deliver_message', 'send_document_email')`);
  return n === 0;
};

it('40 bills, CONNECTION_DELETED, the same 40 under new ids plus 2 new: the receiver and the mailbox get the 2 new ones', async () => {
  for (const i of Array.from({ length: 42 }, (_, i) => i)) {
    const pdf = await makePdf([`Acme — facture FA-${1000 + i}`, `${amount(i)} EUR`]);
    site.route(`/c31/bill-${i}.pdf`, send(pdf, 'application/pdf'));
    // Re-rendered by the provider for 20–29: the same bill, other bytes.
    site.route(`/c32/bill-${i}.pdf`, send(i >= 20 && i < 30 ? await makePdf([`Acme — facture FA-${1000 + i}`, `${amount(i)} EUR`, 'duplicata']) : pdf, 'application/pdf'));
  }
  const old = Array.from({ length: 40 }, (_, i) => i);

  // The first connection: 40 bills announced, 40 mails.
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', sync(31, 501, 9000, old, '2026-11-01T08:00:00Z'))).status).toBe(200);
  await waitUntil(async () => created(all).length >= 40 && smtp.mails.length >= 40 && (await drained()), 60_000, '40 announcements');
  expect(created(all).sort()).toEqual(old.map((i) => 9000 + i));
  expect(smtp.mails).toHaveLength(40);

  // The connection breaks; the user deletes it and connects the same provider again.
  expect((await ctx.sendWebhook('CONNECTION_DELETED', { id: 31, id_user: 7 })).status).toBe(200);
  const again = [...old, 40, 41];
  expect((await ctx.sendWebhook('CONNECTION_SYNCED', sync(32, 502, 19000, again, '2026-11-20T08:00:00Z'))).status).toBe(200);

  // Every new document settled and either announced or found a repeat; then nothing left to send.
  await waitUntil(async () => {
    const [{ n }] = await ctx.deps.db.execute<{ n: number }>(sql`
      select count(*)::int as n from documents d
      where d.subscription_id = 502
        and (d.duplicate_reason is not null or exists (select 1 from events e where e.dedupe_key = 'document.created:' || d.id))`);
    return n === 42 && (await drained());
  }, 60_000, 'the second connection settled');

  expect(created(all).slice(40).sort()).toEqual([19040, 19041]);
  expect(smtp.mails.slice(40).map((m) => m.messageId).sort()).toEqual(['<document-19040.user-7@docrelay>', '<document-19041.user-7@docrelay>']);
  expect(smtp.mails).toHaveLength(42);
  // document.duplicate is opt-in: the endpoint with all events never got one; the one that asked got 40.
  expect(typesOf(all).filter((m) => m.type === 'document.duplicate')).toHaveLength(0);
  await dups.waitFor(40);
  const repeats = typesOf(dups);
  expect(repeats.every((m) => m.type === 'document.duplicate')).toBe(true);
  expect(repeats.map((m) => m.data.document.id).sort()).toEqual(old.map((i) => 19000 + i));
  expect(repeats[0].data.document).toMatchObject({ duplicate_of: 'erased' });

  // The repeats are stored and readable as usual, and say what they repeat and why.
  const list = await (await ctx.request('GET', '/users/7/documents?duplicates&limit=1000')).json();
  expect(list.total).toBe(40);
  const reasons = new Map<number, string>(list.documents.map((d: any) => [d.id, `${d.duplicate_of}:${d.duplicate_reason}`]));
  for (const i of old) expect(reasons.get(19000 + i), `bill ${i}`).toBe(i < 20 ? 'erased:file' : 'erased:fields');
  const fresh = await (await ctx.request('GET', '/users/7/documents/19040')).json();
  expect(fresh).toMatchObject({ duplicate_of: null, duplicate_reason: null, file: { status: 'ready' } });
  const everything = await (await ctx.request('GET', '/users/7/documents?limit=1000')).json();
  expect(everything.total).toBe(42);
}, 150_000);
