import { randomBytes } from 'node:crypto';
import { existsSync, mkdirSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { z } from 'zod';

/**
 * The environment, parsed once (README: Configuration). Nothing else in the code base reads
 * `process.env`: the parsed Config is passed in, so every part can be built with any
 * configuration in tests.
 */

const flag = z.enum(['0', '1']).transform((v) => v === '1');
const optionalString = z
  .string()
  .optional()
  .transform((v) => (v === undefined || v === '' ? undefined : v));
const optionalUrl = optionalString.pipe(z.url().optional());

const EnvSchema = z.object({
  NODE_ENV: z.string().default('development'),
  ROLE: z.enum(['web', 'worker', 'all']).default('all'),
  PORT: z.coerce.number().int().min(0).max(65535).default(3000),
  HOST: z.string().min(1).default('127.0.0.1'),
  DATABASE_URL: optionalUrl,
  DATA_DIR: z.string().min(1).default('./.data'),
  PUBLIC_URL: optionalUrl,
  ADMIN_TOKEN: optionalString.pipe(z.string().min(16).optional()),
  INBOUND_WEBHOOK_SECRET: optionalString,
  INBOUND_SIGNATURE_TOLERANCE_S: z.coerce.number().int().min(0).default(900),
  LINK_SECRET: optionalString.pipe(z.string().min(16).optional()),
  LINK_TTL_S: z.coerce.number().int().positive().default(86400),
  SMTP_URL: optionalUrl,
  MAIL_FROM: z.string().default('docrelay <docrelay@localhost>'),
  SVIX_API_KEY: optionalString,
  SVIX_SERVER_URL: optionalUrl,
  UPSTREAM_API_URL: optionalUrl,
  UPSTREAM_API_TOKEN: optionalString,
  FETCH_ALLOW_PRIVATE_NETWORKS: flag.default(false),
  FILE_MAX_BYTES: z.coerce.number().int().positive().default(26214400),
  CHROMIUM_PATH: optionalString,
  WORKER_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(4),
  FILE_CONCURRENCY: z.coerce.number().int().min(1).max(100).default(4),
  FILE_DOWNLOAD_TIMEOUT_S: z.coerce.number().int().min(1).max(3600).default(120),
  WEBHOOK_TIMEZONE: z
    .string()
    .default('Europe/Paris')
    .refine(isTimeZone, { message: 'not an IANA time zone' }),
  METRICS_PORT: z.coerce.number().int().min(1).max(65535).optional(),
  OPS_WEBHOOK_URL: optionalUrl,
  OPS_WEBHOOK_SECRET: optionalString.pipe(z.string().regex(/^whsec_[A-Za-z0-9+/]{32,}={0,2}$/, 'whsec_ and base64, as an endpoint secret').optional()),
  OPS_EMAIL: optionalString.pipe(z.email().optional()),
  RETAIN_DELIVERIES_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  RETAIN_EVENTS_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  RETAIN_INBOUND_KEYS_DAYS: z.coerce.number().int().min(1).max(3650).default(30),
  SHUTDOWN_TIMEOUT_S: z.coerce.number().int().min(1).default(90),
  WORKER_HEARTBEAT_S: z.coerce.number().int().min(1).max(3600).default(15),
  WORKER_DEAD_AFTER_S: z.coerce.number().int().min(2).max(86400).default(60),
  LOG_LEVEL: z.enum(['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent']).default('info'),
});

function isTimeZone(tz: string): boolean {
  try {
    new Intl.DateTimeFormat('en-US', { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}

export interface Config {
  production: boolean;
  role: 'web' | 'worker' | 'all';
  port: number;
  host: string;
  /** Unset: main.ts starts an embedded PostgreSQL under dataDir. */
  databaseUrl?: string;
  dataDir: string;
  publicUrl: string;
  adminToken: string;
  inboundWebhookSecret: string;
  inboundSignatureToleranceS: number;
  linkSecret: string;
  linkTtlS: number;
  smtpUrl?: string;
  mailFrom: string;
  svixApiKey?: string;
  svixServerUrl?: string;
  upstreamApiUrl?: string;
  upstreamApiToken?: string;
  fetchAllowPrivateNetworks: boolean;
  fileMaxBytes: number;
  chromiumPath?: string;
  /** Jobs at once in the pool of every task but the file downloads. */
  workerConcurrency: number;
  /** Jobs at once in the file pool (downloads, conversions): its own budget, see worker.ts. */
  fileConcurrency: number;
  /** The whole of one download, redirects included; past it the try fails and is retried. */
  fileDownloadTimeoutS: number;
  webhookTimezone: string;
  /** `/metrics` without a token on this port; unset: only on the API, with the admin token. */
  metricsPort?: number;
  /** Where operational events go (notify/ops-events.ts); none of them set: nowhere. */
  ops: { webhookUrl?: string; webhookSecret?: string; email?: string };
  /** Days kept by prune_retention (retention/prune.ts). */
  retentionDays: { deliveries: number; events: number; inboundKeys: number };
  /** After a SIGTERM, how long jobs may run on before they are aborted and released (main.ts). */
  shutdownTimeoutS: number;
  /**
   * Each worker pool's heartbeat, and how long one may be silent before another worker
   * process releases the jobs it held (jobs/liveness.ts).
   */
  workerLiveness: { heartbeatS: number; deadAfterS: number };
  logLevel: z.infer<typeof EnvSchema>['LOG_LEVEL'];
}

export class ConfigError extends Error {}

/** What signs the file links of documents (lib/file-links.ts): their secret, lifetime and base URL. */
export interface LinkSigner {
  secret: string;
  ttlS: number;
  publicUrl: string;
}

export const linkSignerOf = (config: Config): LinkSigner => ({
  secret: config.linkSecret,
  ttlS: config.linkTtlS,
  publicUrl: config.publicUrl,
});

/**
 * Parse the environment. In production every secret must be given; in development the
 * missing ones are generated once and kept in DATA_DIR (`onGenerated` is told, so main
 * can print the admin token that one time).
 */
export function loadConfig(
  env: Record<string, string | undefined>,
  onGenerated: (name: string, value: string) => void = () => {},
): Config {
  const parsed = EnvSchema.safeParse(env);
  if (!parsed.success) {
    const lines = parsed.error.issues.map((i) => `  ${i.path.join('.')}: ${i.message}`);
    throw new ConfigError(`invalid configuration:\n${lines.join('\n')}`);
  }
  const e = parsed.data;
  const production = e.NODE_ENV === 'production';
  const dataDir = resolve(e.DATA_DIR);

  const secret = (name: 'ADMIN_TOKEN' | 'LINK_SECRET', given: string | undefined): string => {
    if (given) return given;
    if (production) throw new ConfigError(`${name} must be set when NODE_ENV=production`);
    return devSecret(dataDir, name, onGenerated);
  };
  const adminToken = secret('ADMIN_TOKEN', e.ADMIN_TOKEN);
  const linkSecret = secret('LINK_SECRET', e.LINK_SECRET);
  if (e.OPS_WEBHOOK_URL && !e.OPS_WEBHOOK_SECRET) throw new ConfigError('OPS_WEBHOOK_SECRET must be set with OPS_WEBHOOK_URL');
  if (e.OPS_EMAIL && !e.SMTP_URL) throw new ConfigError('OPS_EMAIL needs SMTP_URL');
  // A worker must be able to miss a beat (a slow query, a pause) without being taken for dead.
  if (e.WORKER_DEAD_AFTER_S < 2 * e.WORKER_HEARTBEAT_S) {
    throw new ConfigError(
      `WORKER_DEAD_AFTER_S (${e.WORKER_DEAD_AFTER_S}) must be at least twice WORKER_HEARTBEAT_S (${e.WORKER_HEARTBEAT_S})`,
    );
  }
  if (production && !e.INBOUND_WEBHOOK_SECRET) {
    throw new ConfigError('INBOUND_WEBHOOK_SECRET must be set when NODE_ENV=production');
  }
  // Every file link in the API, webhooks and mails is built on it: http://localhost links
  // from a deployed service would reach nobody.
  if (production && !e.PUBLIC_URL) {
    throw new ConfigError('PUBLIC_URL must be set when NODE_ENV=production (the https:// address clients reach the service at)');
  }

  return {
    production,
    role: e.ROLE,
    port: e.PORT,
    host: e.HOST,
    databaseUrl: e.DATABASE_URL,
    dataDir,
    publicUrl: (e.PUBLIC_URL ?? `http://localhost:${e.PORT}`).replace(/\/+$/, ''),
    adminToken,
    inboundWebhookSecret: e.INBOUND_WEBHOOK_SECRET ?? adminToken,
    inboundSignatureToleranceS: e.INBOUND_SIGNATURE_TOLERANCE_S,
    linkSecret,
    linkTtlS: e.LINK_TTL_S,
    smtpUrl: e.SMTP_URL,
    mailFrom: e.MAIL_FROM,
    svixApiKey: e.SVIX_API_KEY,
    svixServerUrl: e.SVIX_SERVER_URL,
    upstreamApiUrl: e.UPSTREAM_API_URL?.replace(/\/+$/, ''),
    upstreamApiToken: e.UPSTREAM_API_TOKEN,
    fetchAllowPrivateNetworks: e.FETCH_ALLOW_PRIVATE_NETWORKS,
    fileMaxBytes: e.FILE_MAX_BYTES,
    chromiumPath: e.CHROMIUM_PATH,
    workerConcurrency: e.WORKER_CONCURRENCY,
    fileConcurrency: e.FILE_CONCURRENCY,
    fileDownloadTimeoutS: e.FILE_DOWNLOAD_TIMEOUT_S,
    webhookTimezone: e.WEBHOOK_TIMEZONE,
    metricsPort: e.METRICS_PORT,
    ops: { webhookUrl: e.OPS_WEBHOOK_URL, webhookSecret: e.OPS_WEBHOOK_SECRET, email: e.OPS_EMAIL },
    retentionDays: { deliveries: e.RETAIN_DELIVERIES_DAYS, events: e.RETAIN_EVENTS_DAYS, inboundKeys: e.RETAIN_INBOUND_KEYS_DAYS },
    shutdownTimeoutS: e.SHUTDOWN_TIMEOUT_S,
    workerLiveness: { heartbeatS: e.WORKER_HEARTBEAT_S, deadAfterS: e.WORKER_DEAD_AFTER_S },
    logLevel: e.LOG_LEVEL,
  };
}

/** A development secret: generated on first start, then read back from DATA_DIR. */
function devSecret(
  dataDir: string,
  name: string,
  onGenerated: (name: string, value: string) => void,
): string {
  const file = join(dataDir, 'secrets', name.toLowerCase());
  if (existsSync(file)) return readFileSync(file, 'utf8').trim();
  mkdirSync(dataDir, { recursive: true });
  mkdirSync(join(dataDir, 'secrets'), { recursive: true, mode: 0o700 });
  const value = randomBytes(24).toString('base64url');
  writeFileSync(file, value + '\n', { mode: 0o600 });
  onGenerated(name, value);
  return value;
}
