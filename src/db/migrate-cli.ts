import { loadConfig } from '../config.js';
import { migrateDatabase } from './migrate.js';

/** `node dist/src/db/migrate-cli.js`: Fly's release_command, so migrations run once per deploy. */
const config = loadConfig(process.env);
if (!config.databaseUrl) {
  console.error('docrelay migrate: DATABASE_URL is required');
  process.exit(78);
}
await migrateDatabase(config.databaseUrl);
console.log('docrelay migrate: up to date');
