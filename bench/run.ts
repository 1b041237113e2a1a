import { benchFiles } from './files.js';
import { benchIngest, benchLargeSync } from './ingest.js';
import { benchNotify } from './notify.js';
import { benchRead } from './read.js';
import { stopPgServer } from './support.js';

/**
 * `npm run bench`: every benchmark of CONTRACT.md §9 and the issues, one after the other on
 * one PostgreSQL (DATABASE_URL / TEST_DATABASE_URL, else embedded). Each prints its figure
 * beside the reference it is compared with, measured in the same run; nothing is asserted.
 */
const benches: [string, () => Promise<void>][] = [
  ['ingest', benchIngest],
  ['large sync', benchLargeSync],
  ['read', benchRead],
  ['jobs (notifications)', async () => void (await benchNotify())],
  ['files', benchFiles],
];

const only = process.argv.slice(2);
for (const [name, run] of benches) {
  if (only.length && !only.some((o) => name.includes(o))) continue;
  await run();
}
await stopPgServer();
