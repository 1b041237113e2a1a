import { pino, type Logger } from 'pino';
import { redactQueryError } from './db/redact.js';

export type { Logger };

/**
 * JSON-lines logs. Anything that may carry a secret is redacted by path, so that a stray
 * `log.info({ headers })` cannot leak a token or a signature; errors are logged without
 * the values bound to their SQL (a failed insert of a webhook endpoint carries its secret
 * in `parameters`), whether under `err` (ours) or `error` (graphile-worker's). Query errors
 * are redacted where they are thrown (db/redact.ts); this is the second line, for an error
 * that reached a log by another way.
 */
export function createLogger(level: string, destination?: pino.DestinationStream): Logger {
  return pino({
    level,
    serializers: { err: serializeError, error: serializeError },
    redact: {
      paths: [
        'secret',
        '*.secret',
        'token',
        '*.token',
        'password',
        '*.password',
        'headers.authorization',
        '*.headers.authorization',
        'headers["bi-signature"]',
        '*.headers["bi-signature"]',
        'config.adminToken',
        'config.inboundWebhookSecret',
        'config.linkSecret',
        'config.svixApiKey',
        'config.upstreamApiToken',
        'config.smtpUrl',
        'config.databaseUrl',
        'config.ops.webhookSecret',
      ],
      censor: '[redacted]',
    },
  }, destination);
}

/** Keys of database errors (postgres.js, drizzle) that hold the values of a query. */
const queryValueKeys = ['parameters', 'args', 'params'];

function serializeError(value: unknown, depth = 0): unknown {
  if (!(value instanceof Error) || depth > 3) return value;
  const out = pino.stdSerializers.err(redactQueryError(value) as Error) as unknown as Record<string, unknown>;
  for (const k of queryValueKeys) delete out[k];
  if (value.cause !== undefined) out.cause = serializeError(value.cause, depth + 1);
  return out;
}
