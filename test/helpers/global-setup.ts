import { rmSync } from 'node:fs';
import postgres from 'postgres';
import type { TestProject } from 'vitest/node';
import { startEmbeddedPostgres, tempDatabaseDir } from '../../src/db/embedded.js';
import { migrateDatabase } from '../../src/db/migrate.js';

declare module 'vitest' {
  export interface ProvidedContext {
    /** Server URL (database part ignored) and the name of the migrated template database. */
    pgServerUrl: string;
    pgTemplate: string;
  }
}

/**
 * One PostgreSQL for the whole run: TEST_DATABASE_URL or DATABASE_URL when set, else an
 * embedded one in a temporary folder. A template database is migrated once; each test
 * file clones it (graphile-worker's own way), so files are isolated and start in ms.
 */
export default async function setup(project: TestProject) {
  let serverUrl = process.env.TEST_DATABASE_URL || process.env.DATABASE_URL;
  let stop: (() => Promise<void>) | undefined;
  let dir: string | undefined;
  if (!serverUrl) {
    dir = tempDatabaseDir('docrelay-test-pg-');
    const pg = await startEmbeddedPostgres(dir);
    serverUrl = pg.url;
    stop = pg.stop;
  }
  const template = `docrelay_template_${process.pid}`;
  const admin = postgres(withDatabase(serverUrl, 'postgres'), { max: 1, onnotice: () => {} });
  await admin.unsafe(`drop database if exists ${template}`);
  await admin.unsafe(`create database ${template}`);
  await migrateDatabase(withDatabase(serverUrl, template));
  project.provide('pgServerUrl', serverUrl);
  project.provide('pgTemplate', template);

  return async () => {
    await admin.unsafe(`drop database if exists ${template} with (force)`).catch(() => {});
    await admin.end({ timeout: 5 });
    await stop?.();
    if (dir) rmSync(dir, { recursive: true, force: true });
  };
}

export function withDatabase(url: string, database: string): string {
  const u = new URL(url);
  u.pathname = `/${database}`;
  return u.toString();
}
