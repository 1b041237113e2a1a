import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { AppError } from '../src/errors.js';
import { newRouter } from '../src/http/router.js';
import { BodySlots } from '../src/inbound/body.js';
import { inboundRoutes } from '../src/inbound/routes.js';
import { createTestContext, INBOUND_SECRET, type TestContext } from './helpers/context.js';
import { waitUntil } from './helpers/receiver.js';
import { powensHeaders } from './helpers/webhooks.js';

/**
 * Issue 9 and the contract: "missing or out-of-date headers are refused before the body is
 * read", and bodies are read a few at a time. Each body here is a stream that counts how
 * often the server pulled from it and hands out bytes only when asked (highWaterMark 0).
 */
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
});
afterAll(() => ctx.close());

const path = '/webhooks/powens/CONNECTION_SYNCED';

/** A body that gives one chunk when first pulled, then holds until `finish()`. */
function heldBody() {
  let finish!: () => void;
  const finished = new Promise<void>((resolve) => (finish = resolve));
  const body = {
    pulls: 0,
    finish,
    stream: new ReadableStream<Uint8Array>(
      {
        async pull(controller) {
          body.pulls++;
          if (body.pulls === 1) return controller.enqueue(new TextEncoder().encode('{"connection": '));
          await finished;
          controller.close();
        },
      },
      { highWaterMark: 0 },
    ),
  };
  return body;
}

const post = (app: { request: (p: string, init: RequestInit) => Response | Promise<Response> }, headers: Record<string, string>, stream: ReadableStream) =>
  Promise.resolve(app.request(path, { method: 'POST', headers: { 'content-type': 'application/json', ...headers }, body: stream, duplex: 'half' } as RequestInit));

describe('a request whose signature headers cannot be right', () => {
  const fresh = () => new Date().toISOString();
  const cases: [string, () => Record<string, string>][] = [
    ['no signature headers', () => ({})],
    ['BI-Signature-Date only', () => ({ 'bi-signature-date': fresh() })],
    ['BI-Signature only', () => ({ 'bi-signature': 'c2lnbmF0dXJl' })],
    ['a date an hour old', () => ({ 'bi-signature-date': new Date(Date.now() - 3600_000).toISOString(), 'bi-signature': 'c2lnbmF0dXJl' })],
    ['a date an hour ahead', () => ({ 'bi-signature-date': new Date(Date.now() + 3600_000).toISOString(), 'bi-signature': 'c2lnbmF0dXJl' })],
    ['a date that is no date', () => ({ 'bi-signature-date': 'yesterday', 'bi-signature': 'c2lnbmF0dXJl' })],
  ];
  it.each(cases)('%s: 401 invalid_signature before a byte of the body is read', async (_name, headers) => {
    const body = heldBody();
    const res = await post(ctx.app, headers(), body.stream);
    body.finish();
    expect(res.status).toBe(401);
    expect((await res.json()).error.code).toBe('invalid_signature');
    expect(body.pulls).toBe(0);
  });

  it('a signed request is still read and applied', async () => {
    const raw = JSON.stringify({ id: 4242 });
    const res = await ctx.app.request('/webhooks/powens/USER_DELETED', { method: 'POST', headers: powensHeaders(INBOUND_SECRET, '/webhooks/powens/USER_DELETED', raw), body: raw });
    expect(await res.json()).toEqual({ status: 'processed' });
  });
});

describe('bodies are read a few at a time', () => {
  /** The inbound routes alone, with their own slots, and the app's error shape. */
  const appWith = (bodySlots: BodySlots) => {
    const app = newRouter();
    app.route('/', inboundRoutes(ctx.deps, { bodySlots }));
    app.onError((err, c) => (err instanceof AppError ? c.json(err.toBody(), err.status) : c.json({ error: String(err) }, 500)));
    return app;
  };
  // Headers that pass the early checks; the signature itself can only be checked on the body.
  const plausible = () => ({ 'bi-signature-date': new Date().toISOString(), 'bi-signature': 'c2lnbmF0dXJl' });

  it('a request past the slots waits, unread, until one comes free', async () => {
    const slots = new BodySlots(2, 60_000);
    const app = appWith(slots);
    const bodies = [heldBody(), heldBody(), heldBody()];
    const first = bodies.slice(0, 2).map((b) => post(app, plausible(), b.stream));
    await waitUntil(async () => bodies[0].pulls > 0 && bodies[1].pulls > 0, 10_000, 'two bodies being read');

    const third = post(app, plausible(), bodies[2].stream);
    await waitUntil(async () => slots.waiting === 1, 10_000, 'the third request to wait for a slot');
    expect(bodies[2].pulls).toBe(0);

    bodies[0].finish();
    expect((await first[0]).status).toBe(401); // read whole, then its signature checked
    await waitUntil(async () => bodies[2].pulls > 0, 10_000, 'the third body to be read');
    bodies[1].finish();
    bodies[2].finish();
    expect((await first[1]).status).toBe(401);
    expect((await third).status).toBe(401);
    expect(slots.waiting).toBe(0);
  });

  it('one that waited too long: 503 server_busy with Retry-After, its body unread', async () => {
    const slots = new BodySlots(1, 50);
    const app = appWith(slots);
    const held = heldBody();
    const holding = post(app, plausible(), held.stream);
    await waitUntil(async () => held.pulls > 0, 10_000, 'the first body being read');

    const late = heldBody();
    const res = await post(app, plausible(), late.stream);
    late.finish();
    expect(res.status).toBe(503);
    expect(res.headers.get('retry-after')).toBe('5');
    expect((await res.json()).error.code).toBe('server_busy');
    expect(late.pulls).toBe(0);
    held.finish();
    expect((await holding).status).toBe(401);
  });
});
