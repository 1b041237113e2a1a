import { Writable } from 'node:stream';
import { expect, it } from 'vitest';
import { createLogger } from '../src/logger.js';

// Secrets never reach logs (DEVELOPERS.md): not through headers, config, nor database errors.
function capture() {
  const lines: string[] = [];
  const stream = new Writable({ write: (chunk, _enc, done) => (lines.push(String(chunk)), done()) });
  return { log: createLogger('info', stream), text: () => lines.join('') };
}

/** Shaped like postgres.js's PostgresError wrapped in drizzle's query error. */
function databaseError(secret: string) {
  const cause = Object.assign(new Error('duplicate key value violates unique constraint'), {
    code: '23505',
    query: 'insert into webhook_endpoints (id, url, secret) values ($1, $2, $3)',
    parameters: ['ep_1', 'https://x.example', secret],
    args: ['ep_1', 'https://x.example', secret],
  });
  return Object.assign(new Error('Failed query', { cause }), { query: cause.query, params: cause.parameters });
}

it('logs a database error with its query and code, never the values bound to it', () => {
  const { log, text } = capture();
  log.error({ err: databaseError('whsec_TOPSECRET') }, 'unhandled error');
  log.error({ error: databaseError('whsec_TOPSECRET2') }, 'graphile-worker style');
  expect(text()).toContain('insert into webhook_endpoints');
  expect(text()).toContain('23505');
  expect(text()).not.toContain('TOPSECRET');
});

it('redacts authorization headers, signatures and config secrets', () => {
  const { log, text } = capture();
  log.info({ headers: { authorization: 'Bearer drt_SECRET1', 'bi-signature': 'SECRET2' }, config: { adminToken: 'SECRET3', linkSecret: 'SECRET4', smtpUrl: 'smtp://u:SECRET5@h' } }, 'request');
  log.info({ endpoint: { secret: 'whsec_SECRET6' } }, 'endpoint');
  expect(text()).not.toMatch(/SECRET\d/);
  expect(text()).toContain('[redacted]');
});
