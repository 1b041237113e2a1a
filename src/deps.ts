import type { Config, LinkSigner } from './config.js';
import type { Db } from './db/client.js';
import type { FileServices } from './files/services.js';
import type { Logger } from './logger.js';
import type { Metrics } from './ops/metrics.js';
import type { NotifyServices } from './notify/services.js';

/** What routes and tasks are built from: resolved once in main.ts (or a test), then passed in. */
export interface Deps {
  config: Config;
  db: Db;
  log: Logger;
  links: LinkSigner;
  /** This process's Prometheus registry and metrics (ops/metrics.ts). */
  metrics: Metrics;
  /** Mailer, Svix client, webhook HTTP agents (notify/services.ts); closed on shutdown. */
  notify: NotifyServices;
  /** Chromium and the download agent, opened once, closed on shutdown. */
  files: FileServices;
}
