import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { createTestContext, type TestContext } from './helpers/context.js';
import { syncedPayload } from './helpers/webhooks.js';

// The read API: lists, pagination, filters, date fields, /config, /health, /openapi.json.
let ctx: TestContext;
beforeAll(async () => {
  ctx = await createTestContext();
  await ctx.sendWebhook(
    'CONNECTION_SYNCED',
    syncedPayload({
      idWebhookData: 1,
      userId: 300,
      connectionId: 3001,
      subscriptions: [
        { id: 30011, documents: [{ id: 1, date: '2026-01-15' }, { id: 2, date: '2026-03-01', type: 'contract' }, { id: 3, date: '2026-03-01' }] },
        { id: 30012, documents: [{ id: 4, date: '2025-12-31' }, { id: 5, date: '2026-06-30' }] },
      ],
    }),
  );
});
afterAll(() => ctx.close());

const get = async (path: string) => {
  const res = await ctx.request('GET', path);
  return { status: res.status, body: await res.json() };
};

describe('GET /users/{u}/documents', () => {
  it('lists newest date first, then id descending, with totals and date bounds', async () => {
    const { body } = await get('/users/300/documents');
    expect(body.documents.map((d: { id: number }) => d.id)).toEqual([5, 3, 2, 1, 4]);
    expect(body).toMatchObject({ total: 5, first_date: '2025-12-31', last_date: '2026-06-30', result_min_date: '2025-12-31', result_max_date: '2026-06-30' });
  });

  it('pages with limit and offset; result dates are those of the page, totals of all matches', async () => {
    const { body } = await get('/users/300/documents?limit=2&offset=1');
    expect(body.documents.map((d: { id: number }) => d.id)).toEqual([3, 2]);
    expect(body).toMatchObject({ total: 5, first_date: '2025-12-31', last_date: '2026-06-30', result_min_date: '2026-03-01', result_max_date: '2026-03-01' });
  });

  it('filters by type and by an inclusive date range', async () => {
    expect((await get('/users/300/documents?type=contract')).body.documents.map((d: { id: number }) => d.id)).toEqual([2]);
    const range = (await get('/users/300/documents?min_date=2026-01-15&max_date=2026-03-01')).body;
    expect(range.documents.map((d: { id: number }) => d.id)).toEqual([3, 2, 1]);
    expect(range).toMatchObject({ total: 3, first_date: '2026-01-15', last_date: '2026-03-01' });
  });

  it('an empty page still carries the totals', async () => {
    const { body } = await get('/users/300/documents?offset=100');
    expect(body).toMatchObject({ documents: [], total: 5, result_min_date: null, result_max_date: null });
  });

  it.each(['limit=0', 'limit=1001', 'limit=abc', 'offset=-1', 'min_date=2026-1-1', 'max_date=tomorrow'])('400 invalid_query for %s', async (q) => {
    const { status, body } = await get(`/users/300/documents?${q}`);
    expect(status).toBe(400);
    expect(body.error.code).toBe('invalid_query');
    expect(body.error.details.length).toBeGreaterThan(0);
  });

  it('shows the document object of the contract', async () => {
    const { body } = await get('/users/300/documents/1');
    expect(Object.keys(body).sort()).toEqual(
      ['id', 'id_subscription', 'id_user', 'name', 'type', 'date', 'rdate', 'duedate', 'number', 'issuer', 'total_amount', 'untaxed_amount', 'vat', 'currency', 'income', 'has_file_on_website', 'url', 'thumb_url', 'file', 'last_update', 'duplicate_of', 'duplicate_reason'].sort(),
    );
    expect(body).toMatchObject({ duplicate_of: null, duplicate_reason: null });
    expect(body.file).toEqual({ status: 'none', content_type: null, size: null, sha256: null, error: null });
    expect(body.url).toBeNull();
  });
});

describe('subscriptions and connections', () => {
  it('lists a connection\'s subscriptions with total', async () => {
    const { body } = await get('/users/300/connections/3001/subscriptions');
    expect(body.total).toBe(2);
    expect(Object.keys(body.subscriptions[0]).sort()).toEqual(
      ['id', 'id_connection', 'id_user', 'number', 'label', 'subscriber', 'validity', 'renewdate', 'last_update', 'deleted'].sort(),
    );
  });
  it('lists connections', async () => {
    const { body } = await get('/users/300/connections');
    expect(body.connections.map((c: { id: number }) => c.id)).toEqual([3001]);
    expect(Object.keys(body.connections[0]).sort()).toEqual(
      ['id', 'id_user', 'id_connector', 'state', 'error_message', 'last_update', 'next_try', 'active', 'captcha'].sort(),
    );
  });
  it('404 for an unknown connection, subscription, document or user', async () => {
    for (const p of ['/users/300/connections/9', '/users/300/subscriptions/9', '/users/300/documents/999', '/users/999/documents', '/users/300/nothing']) {
      const { status, body } = await get(p);
      expect(status, p).toBe(404);
      expect(body.error.code).toBe('not_found');
    }
  });
});

describe('/config', () => {
  it('has the Powens-style defaults', async () => {
    expect((await get('/config')).body).toEqual({ force_pdf: '0', 'captcha.enabled': '0', 'captcha.max_retries': '6', 'notify.document_types': 'bill', 'notify.dedupe': '1' });
  });
  it('takes a partial object and returns the whole config', async () => {
    const res = await ctx.request('POST', '/config', { body: { 'notify.document_types': 'bill,contract' } });
    expect(res.status).toBe(200);
    expect(await res.json()).toMatchObject({ force_pdf: '0', 'notify.document_types': 'bill,contract' });
  });
  it.each([
    [{ nope: '1' }],
    [{ force_pdf: '2' }],
    [{ force_pdf: 1 }],
    [{ 'captcha.max_retries': 'many' }],
    [{ force_pdf: '1', 'captcha.enabled': 'yes' }],
  ])('400 invalid_config for %j, and nothing changes', async (update) => {
    const before = (await get('/config')).body;
    const res = await ctx.request('POST', '/config', { body: update });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toBe('invalid_config');
    expect((await get('/config')).body).toEqual(before);
  });
  it('malformed JSON gets the one error shape', async () => {
    const res = await ctx.request('POST', '/config', { body: '{"force_pdf":' });
    expect(res.status).toBe(400);
    expect((await res.json()).error.code).toMatch(/^invalid_/);
  });
});

describe('service routes', () => {
  it('GET /health answers ok while the database answers', async () => {
    expect(await get('/health')).toEqual({ status: 200, body: { status: 'ok' } });
  });
  it('GET /openapi.json describes the routes', async () => {
    const { status, body } = await get('/openapi.json');
    expect(status).toBe(200);
    expect(body.openapi).toMatch(/^3\./);
    for (const p of ['/users/{u}/documents', '/users/{u}/subscriptions', '/users/{u}/connections/{id}/subscriptions', '/config', '/health', '/webhooks/powens/CONNECTION_SYNCED', '/webhooks/powens/CONNECTION_DELETED', '/webhooks/powens/USER_DELETED']) {
      expect(Object.keys(body.paths)).toContain(p);
    }
  });
});
