import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import postgres from 'postgres';
import { describe, expect, it } from 'vitest';
import { ConfigError, loadConfig } from '../src/config.js';
import { startEmbeddedPostgres, tempDatabaseDir } from '../src/db/embedded.js';

const tmp = () => mkdtempSync(join(tmpdir(), 'docrelay-cfg-'));

describe('loadConfig', () => {
  it('applies the contract defaults', () => {
    const c = loadConfig({ DATA_DIR: tmp() });
    expect(c).toMatchObject({ port: 3000, host: '127.0.0.1', role: 'all', inboundSignatureToleranceS: 900, linkTtlS: 86400, fileMaxBytes: 26214400, workerConcurrency: 4, fileConcurrency: 4, fileDownloadTimeoutS: 120, webhookTimezone: 'Europe/Paris', fetchAllowPrivateNetworks: false, publicUrl: 'http://localhost:3000', shutdownTimeoutS: 90, workerLiveness: { heartbeatS: 15, deadAfterS: 60 } });
    expect(c.inboundWebhookSecret).toBe(c.adminToken);
  });

  it('generates development secrets once, keeps them in DATA_DIR, and says so once', () => {
    const dir = tmp();
    const told: string[] = [];
    const first = loadConfig({ DATA_DIR: dir }, (name) => told.push(name));
    const second = loadConfig({ DATA_DIR: dir }, (name) => told.push(name));
    expect(told.sort()).toEqual(['ADMIN_TOKEN', 'LINK_SECRET']);
    expect(second.adminToken).toBe(first.adminToken);
    expect(readFileSync(join(dir, 'secrets', 'admin_token'), 'utf8').trim()).toBe(first.adminToken);
  });

  it.each([
    [{ NODE_ENV: 'production' }, /ADMIN_TOKEN must be set/],
    [{ NODE_ENV: 'production', ADMIN_TOKEN: 'a'.repeat(20), LINK_SECRET: 'b'.repeat(20) }, /INBOUND_WEBHOOK_SECRET must be set/],
    [{ NODE_ENV: 'production', ADMIN_TOKEN: 'a'.repeat(20), LINK_SECRET: 'b'.repeat(20), INBOUND_WEBHOOK_SECRET: 'c'.repeat(20) }, /PUBLIC_URL must be set/],
    [{ SHUTDOWN_TIMEOUT_S: '0' }, /SHUTDOWN_TIMEOUT_S/],
    [{ WORKER_HEARTBEAT_S: '0' }, /WORKER_HEARTBEAT_S/],
    [{ WORKER_DEAD_AFTER_S: 'soon' }, /WORKER_DEAD_AFTER_S/],
    [{ WORKER_HEARTBEAT_S: '31' }, /WORKER_DEAD_AFTER_S \(60\) must be at least twice WORKER_HEARTBEAT_S \(31\)/],
    [{ PORT: 'eighty' }, /PORT/],
    [{ ROLE: 'both' }, /ROLE/],
    [{ WEBHOOK_TIMEZONE: 'Mars/Olympus' }, /WEBHOOK_TIMEZONE/],
    [{ FETCH_ALLOW_PRIVATE_NETWORKS: 'yes' }, /FETCH_ALLOW_PRIVATE_NETWORKS/],
    [{ DATABASE_URL: 'not a url' }, /DATABASE_URL/],
  ] as [Record<string, string>, RegExp][])('refuses %j with a message naming the problem', (env, message) => {
    const dir = tmp();
    expect(() => loadConfig({ DATA_DIR: dir, ...env })).toThrow(ConfigError);
    expect(() => loadConfig({ DATA_DIR: dir, ...env })).toThrow(message);
    // Production never writes generated secrets.
    if (env.NODE_ENV === 'production') expect(existsSync(join(dir, 'secrets'))).toBe(false);
  });
});

describe('embedded PostgreSQL', () => {
  it('keeps its data under the folder across restarts', async () => {
    const dir = tempDatabaseDir('docrelay-embedded-');
    try {
      const first = await startEmbeddedPostgres(dir);
      const a = postgres(first.url, { max: 1, onnotice: () => {} });
      await a`create table kept (v text)`;
      await a`insert into kept values ('still here')`;
      await a.end();
      await first.stop();

      const second = await startEmbeddedPostgres(dir);
      expect(second.url).toBe(first.url);
      const b = postgres(second.url, { max: 1 });
      expect(await b`select v from kept`).toEqual([{ v: 'still here' }]);
      await b.end();
      await second.stop();
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }, 60_000);
});
