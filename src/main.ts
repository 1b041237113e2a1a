import { serve, type ServerType } from '@hono/node-server';
import { join } from 'node:path';
import { createApp } from './app.js';
import { ConfigError, linkSignerOf, loadConfig, type Config } from './config.js';
import { openDatabase } from './db/client.js';
import { startEmbeddedPostgres } from './db/embedded.js';
import { migrateDatabase } from './db/migrate.js';
import type { Deps } from './deps.js';
import type { FileServices } from './files/services.js';
import { createLogger } from './logger.js';
import { createMetrics } from './ops/metrics.js';
import { serveMetrics } from './ops/metrics-routes.js';
import { createNotifyServices } from './notify/services.js';
import type { Worker } from './worker.js';

/**
 * Load config → database (embedded when DATABASE_URL is unset) → migrations → API and/or
 * worker by ROLE. SIGTERM/SIGINT: stop accepting, let in-flight requests and jobs finish,
 * then close the database.
 */
async function main(): Promise<void> {
  const generated: string[] = [];
  let config;
  try {
    // `--role=web|worker` overrides ROLE: Fly process groups share one environment.
    const role = process.argv.find((a) => a.startsWith('--role='))?.slice('--role='.length);
    config = loadConfig({ ...process.env, ...(role ? { ROLE: role } : {}) }, (name, value) => generated.push(`${name}=${value}`));
  } catch (e) {
    if (e instanceof ConfigError) {
      console.error(`docrelay: ${e.message}`);
      process.exit(78); // EX_CONFIG
    }
    throw e;
  }
  const log = createLogger(config.logLevel);
  // Logged before Node's default (print and exit 1), so that the reason is in the JSON log.
  process.on('uncaughtException', (err) => {
    log.fatal({ err }, 'uncaught exception');
    process.exit(1);
  });
  for (const line of generated) {
    // Printed this once, on stderr, so that a developer can use it; kept in DATA_DIR/secrets.
    console.error(`docrelay: generated development secret ${line} (kept in ${join(config.dataDir, 'secrets')})`);
  }

  let databaseUrl = config.databaseUrl;
  let stopEmbedded: (() => Promise<void>) | undefined;
  // A signal during start-up stops at once (the embedded database, in a process group of
  // its own, too); once up, the service drains first (below).
  let shutdown = async (signal: string): Promise<void> => {
    log.info({ signal }, 'stopping during start-up');
    await stopEmbedded?.();
    process.exit(0);
  };
  process.on('SIGTERM', () => void shutdown('SIGTERM'));
  process.on('SIGINT', () => void shutdown('SIGINT'));
  if (!databaseUrl) {
    log.info({ dir: join(config.dataDir, 'postgres') }, 'DATABASE_URL unset: starting embedded PostgreSQL');
    const embedded = await startEmbeddedPostgres(join(config.dataDir, 'postgres'), (m) => log.warn(m));
    databaseUrl = embedded.url;
    stopEmbedded = embedded.stop;
  }

  await migrateDatabase(databaseUrl);
  const database = openDatabase(databaseUrl);
  const deps: Deps = { config, db: database.db, log, links: linkSignerOf(config), metrics: createMetrics(), notify: createNotifyServices(config), files: await fileServices(config) };

  let server: ServerType | undefined;
  let worker: Worker | undefined;
  const metricsServer =
    config.metricsPort === undefined
      ? undefined
      : serveMetrics(deps, config.metricsPort, config.host, (port) => log.info({ port }, 'metrics listening (unauthenticated)'));
  if (config.role !== 'worker') {
    const app = createApp(deps);
    server = serve({ fetch: app.fetch, port: config.port, hostname: config.host }, (info) =>
      log.info({ url: `http://${info.address}:${info.port}`, publicUrl: config.publicUrl }, 'API listening'),
    );
  }
  if (config.role !== 'web') {
    // Imported only here: the tasks load pdf.js and Chromium's driver (some 200 MiB of
    // memory) that a web process never uses.
    const { startWorker } = await import('./worker.js');
    worker = await startWorker(deps, databaseUrl);
    log.info({ concurrency: config.workerConcurrency, fileConcurrency: config.fileConcurrency }, 'worker started');
  }

  let stopping = false;
  shutdown = async (signal: string) => {
    if (stopping) return;
    stopping = true;
    log.info({ signal, timeoutS: config.shutdownTimeoutS }, 'shutting down: draining requests and jobs');
    // Within the platform's kill timeout (fly.toml: 120 s): past SHUTDOWN_TIMEOUT_S, downloads
    // are aborted and the jobs still running released to run again elsewhere; if even that
    // hangs, the process exits anyway a little later.
    const deadline = setTimeout(() => {
      log.warn({ timeoutS: config.shutdownTimeoutS }, 'shutdown timeout: aborting downloads, releasing running jobs');
      void deps.files.abortDownloads();
      (server as { closeAllConnections?: () => void } | undefined)?.closeAllConnections?.();
      setTimeout(() => {
        log.error('shutdown did not finish; exiting');
        process.exit(1);
      }, 15_000).unref();
    }, config.shutdownTimeoutS * 1000);
    await Promise.all([
      server && new Promise<void>((resolve) => server!.close(() => resolve())),
      metricsServer && new Promise<void>((resolve) => metricsServer.close(() => resolve())),
      worker?.stop(config.shutdownTimeoutS * 1000),
    ]);
    clearTimeout(deadline);
    await deps.notify.close();
    await deps.files.close();
    await database.close();
    await stopEmbedded?.();
    log.info('stopped');
    process.exit(0);
  };
}

/**
 * Chromium's driver, the download agent and the thumbnail thread serve only the worker's
 * tasks: a web process neither imports nor builds them (some 30 MiB it would hold idle;
 * test/inbound-unsigned-uploads.test.ts measures the web process).
 */
async function fileServices(config: Config): Promise<FileServices> {
  if (config.role !== 'web') return (await import('./files/services.js')).createFileServices(config);
  const absent = (): never => {
    throw new Error('file services are built only where the worker runs (ROLE=worker or all)');
  };
  return {
    get renderer() { return absent(); },
    get downloads() { return absent(); },
    get limits() { return absent(); },
    imageThumbnail: absent,
    pdfThumbnail: absent,
    abortDownloads: async () => {},
    close: async () => {},
  };
}

main().catch((e) => {
  console.error('docrelay: failed to start:', e);
  process.exit(1);
});
