import { mkdtempSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterAll, expect, it } from 'vitest';
import { createApp } from '../src/app.js';
import { linkSignerOf, loadConfig } from '../src/config.js';
import { openDatabase } from '../src/db/client.js';
import { freePort } from '../src/db/embedded.js';
import { createNotifyServices } from '../src/notify/services.js';
import { createFileServices } from '../src/files/services.js';
import { createLogger } from '../src/logger.js';
import { ADMIN_TOKEN, INBOUND_SECRET } from './helpers/context.js';
import { powensHeaders, syncedPayload } from './helpers/webhooks.js';
import { createMetrics } from '../src/ops/metrics.js';

// A database failure is a 5xx, so that the aggregator retries the delivery (issue 2).
const port = await freePort(); // nothing listens there
const database = openDatabase(`postgres://postgres@127.0.0.1:${port}/none`, { max: 1 });
afterAll(() => Promise.all([database.close(), files.close()]));
const config = loadConfig({ DATA_DIR: mkdtempSync(join(tmpdir(), 'docrelay-')), ADMIN_TOKEN, INBOUND_WEBHOOK_SECRET: INBOUND_SECRET, LINK_SECRET: 'x'.repeat(20), LOG_LEVEL: 'silent' });
const files = createFileServices(config);
const app = createApp({ config, db: database.db, log: createLogger('silent'), links: linkSignerOf(config), metrics: createMetrics(), notify: createNotifyServices(config), files });

it('GET /health answers 503', async () => {
  const res = await app.request('/health');
  expect(res.status).toBe(503);
});

it('a valid webhook answers 503 database_unavailable', async () => {
  const path = '/webhooks/powens/CONNECTION_SYNCED';
  const raw = JSON.stringify(syncedPayload({ idWebhookData: 1, subscriptions: [] }));
  const res = await app.request(path, { method: 'POST', headers: powensHeaders(INBOUND_SECRET, path, raw), body: raw });
  expect(res.status).toBe(503);
  expect((await res.json()).error.code).toBe('database_unavailable');
});
