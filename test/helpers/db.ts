import { randomBytes } from 'node:crypto';
import postgres from 'postgres';
import { inject } from 'vitest';
import { openDatabase, type Database } from '../../src/db/client.js';
import { withDatabase } from './global-setup.js';

export interface TestDatabase extends Database {
  url: string;
  /** Drop the clone (call in afterAll). */
  drop(): Promise<void>;
}

/** A fresh database cloned from the migrated template: this file's alone. */
export async function createTestDatabase(): Promise<TestDatabase> {
  const server = inject('pgServerUrl');
  const name = `docrelay_test_${randomBytes(6).toString('hex')}`;
  const admin = postgres(withDatabase(server, 'postgres'), { max: 1, onnotice: () => {} });
  await admin.unsafe(`create database ${name} template ${inject('pgTemplate')}`);
  const url = withDatabase(server, name);
  const database = openDatabase(url);
  return {
    ...database,
    url,
    drop: async () => {
      await database.close();
      // A stopped graphile-worker's pool hands its sockets to end() without waiting for them
      // to close; dropping `with (force)` under them makes pg throw an uncaught 57P01. Give
      // those sockets a moment to go (2 s at most) before forcing.
      for (let i = 0; i < 40; i++) {
        const [{ n }] = await admin.unsafe<{ n: number }[]>(`select count(*)::int as n from pg_stat_activity where datname = '${name}'`);
        if (n === 0) break;
        await new Promise((resolve) => setTimeout(resolve, 50));
      }
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}
