import { fileURLToPath } from 'node:url';
import { migrate } from 'drizzle-orm/postgres-js/migrator';
import { Logger, runMigrations } from 'graphile-worker';
import { drizzle } from 'drizzle-orm/postgres-js';
import postgres from 'postgres';

const migrationsFolder = fileURLToPath(new URL('../../drizzle', import.meta.url));
// Any constant shared by every docrelay instance: the key of the migration lock.
const MIGRATION_LOCK = 4_242_001;

/**
 * Bring the database up to date: drizzle's migrations, then graphile-worker's own schema.
 * Several instances may start at once (fly machines, web + worker): a session advisory
 * lock makes them take turns, and the second one finds nothing left to do.
 */
export async function migrateDatabase(url: string): Promise<void> {
  const sql = postgres(url, { max: 1, onnotice: () => {} });
  try {
    await sql`select pg_advisory_lock(${MIGRATION_LOCK})`;
    try {
      await migrate(drizzle(sql), { migrationsFolder });
      await runMigrations({ connectionString: url, logger: quietLogger() });
    } finally {
      await sql`select pg_advisory_unlock(${MIGRATION_LOCK})`;
    }
  } finally {
    await sql.end({ timeout: 5 });
  }
}

const quietLogger = () => new Logger(() => () => {});
