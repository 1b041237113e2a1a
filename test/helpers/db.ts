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
      await admin.unsafe(`drop database if exists ${name} with (force)`);
      await admin.end({ timeout: 5 });
    },
  };
}
