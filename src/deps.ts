import type { Config } from './config.js';
import type { Db } from './db/client.js';
import type { LinkSigner } from './files/links.js';
import type { Logger } from './logger.js';

/** What routes and tasks are built from: resolved once in main.ts (or a test), then passed in. */
export interface Deps {
  config: Config;
  db: Db;
  log: Logger;
  links: LinkSigner;
}

export const linkSignerOf = (config: Config): LinkSigner => ({
  secret: config.linkSecret,
  ttlS: config.linkTtlS,
  publicUrl: config.publicUrl,
});
