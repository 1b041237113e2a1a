import { linkSignerOf, loadConfig } from '../../src/config.js';
import { openDatabase } from '../../src/db/client.js';
import { createFileServices } from '../../src/files/services.js';
import { createLogger } from '../../src/logger.js';
import { createNotifyServices } from '../../src/notify/services.js';
import { startWorker } from '../../src/worker.js';
import { createMetrics } from '../../src/ops/metrics.js';

/** The real worker in a process of its own, so that a test can kill it with SIGKILL mid-job. */
const config = loadConfig(process.env);
const database = openDatabase(config.databaseUrl!);
const deps = { config, db: database.db, log: createLogger(config.logLevel), links: linkSignerOf(config), metrics: createMetrics(), notify: createNotifyServices(config), files: createFileServices(config) };
await startWorker(deps, config.databaseUrl!, { pollInterval: 100 });
process.stdout.write('ready\n');
