import { mkdtempSync, readFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { createApp, type App } from '../../src/app.js';
import { type Config, linkSignerOf, loadConfig } from '../../src/config.js';
import type { Deps } from '../../src/deps.js';
import { createFileServices } from '../../src/files/services.js';
import { createLogger } from '../../src/logger.js';
import { createNotifyServices } from '../../src/notify/services.js';
import { startWorker, type Worker } from '../../src/worker.js';
import { createTestDatabase, type TestDatabase } from './db.js';
import { powensHeaders } from './webhooks.js';
import { createMetrics } from '../../src/ops/metrics.js';

export const ADMIN_TOKEN = 'test-admin-token-0123456789';
export const INBOUND_SECRET = 'test-inbound-secret';

export interface TestContext {
  config: Config;
  deps: Deps;
  app: App;
  database: TestDatabase;
  /** Sign and POST a Powens webhook through the app (no network). */
  sendWebhook(event: string, body: unknown, opts?: { date?: string; secret?: string }): Promise<Response>;
  /** A request through the app with the admin token (or the given one). */
  request(method: string, path: string, opts?: { token?: string | null; body?: unknown }): Promise<Response>;
  /** Start the real graphile-worker on this database (stopped by close()). */
  startWorker(): Promise<Worker>;
  close(): Promise<void>;
}

/** A test's service: fresh database, config from an env object, the real app. */
export async function createTestContext(env: Record<string, string> = {}): Promise<TestContext> {
  const database = await createTestDatabase();
  const config = loadConfig({
    DATA_DIR: mkdtempSync(join(tmpdir(), 'docrelay-test-')),
    ADMIN_TOKEN,
    INBOUND_WEBHOOK_SECRET: INBOUND_SECRET,
    LINK_SECRET: 'test-link-secret-0123456789',
    LOG_LEVEL: process.env.TEST_LOG_LEVEL ?? 'silent',
    DATABASE_URL: database.url,
    ...env,
  });
  const deps: Deps = { config, db: database.db, log: createLogger(config.logLevel), links: linkSignerOf(config), metrics: createMetrics(), notify: createNotifyServices(config), files: createFileServices(config) };
  const app = createApp(deps);
  const workers: Worker[] = [];

  const request: TestContext['request'] = (method, path, opts = {}) => {
    const headers: Record<string, string> = {};
    const token = opts.token === undefined ? ADMIN_TOKEN : opts.token;
    if (token) headers.authorization = `Bearer ${token}`;
    let body: string | undefined;
    if (opts.body !== undefined) {
      headers['content-type'] = 'application/json';
      body = typeof opts.body === 'string' ? opts.body : JSON.stringify(opts.body);
    }
    return Promise.resolve(app.request(path, { method, headers, body }));
  };

  return {
    config,
    deps,
    app,
    database,
    request,
    sendWebhook: async (event, body, opts = {}) => {
      const path = `/webhooks/powens/${event}`;
      const raw = typeof body === 'string' ? body : JSON.stringify(body);
      const headers = powensHeaders(opts.secret ?? INBOUND_SECRET, path, raw, opts.date);
      return app.request(path, { method: 'POST', headers: { ...headers, 'content-type': 'application/json' }, body: raw });
    },
    startWorker: async () => {
      const w = await startWorker(deps, database.url, { pollInterval: 100 });
      workers.push(w);
      return w;
    },
    close: async () => {
      await Promise.all(workers.map((w) => w.stop()));
      await deps.notify.close();
      await deps.files.close();
      await database.drop();
    },
  };
}

// A verbatim copy of the workspace's shared/fixtures/powens, so that the suite runs from any clone.
const fixtures = fileURLToPath(new URL('../fixtures/powens/', import.meta.url));
/** A Powens fixture (test/fixtures/powens), parsed (a fresh copy each call). */
export function fixture<T = any>(name: string): T {
  return JSON.parse(readFileSync(join(fixtures, `${name}.json`), 'utf8'));
}
