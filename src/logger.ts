import { pino, type Logger } from 'pino';

export type { Logger };

/**
 * JSON-lines logs. Anything that may carry a secret is redacted by path, so that a stray
 * `log.info({ headers })` cannot leak a token or a signature.
 */
export function createLogger(level: string): Logger {
  return pino({
    level,
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
      ],
      censor: '[redacted]',
    },
  });
}
