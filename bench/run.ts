import { writeFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { benchEndToEnd } from './e2e.js';
import { benchFiles } from './files.js';
import { benchIngest, benchLargeSync } from './ingest.js';
import { benchNotify } from './notify.js';
import { benchRead } from './read.js';
import { benchSoak } from './soak.js';
import { results, stopPgServer } from './support.js';

/**
 * `npm run bench`: every benchmark of the README's "Performance" table, one after the other
 * on one PostgreSQL (DATABASE_URL / TEST_DATABASE_URL, else embedded). Each prints its
 * figure beside the reference it is compared with, measured in the same run; nothing is
 * asserted. `npm run bench -- <name>` runs those whose name contains <name>. All figures
 * go to bench/results.json.
 */
const benches: [string, () => Promise<unknown>][] = [
  ['ingest', benchIngest],
  ['sync', benchLargeSync],
  ['read', benchRead],
  ['jobs', benchNotify],
  ['e2e', benchEndToEnd],
  ['files', benchFiles],
  ['soak', benchSoak],
];

const only = process.argv.slice(2);
const started = new Date().toISOString();
for (const [name, run] of benches) {
  if (only.length && !only.some((o) => name.includes(o))) continue;
  await run();
}
await stopPgServer();
const out = fileURLToPath(new URL('./results.json', import.meta.url));
writeFileSync(out, JSON.stringify({ started, node: process.version, only, results }, null, 2) + '\n');
console.log(`\nfigures written to ${out}`);
