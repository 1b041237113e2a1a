import { HTTPException } from 'hono/http-exception';
import { requestId } from 'hono/request-id';
import { requireToken } from './http/auth.js';
import { configRoutes } from './api/config.js';
import { connectionRoutes } from './api/connections.js';
import { documentRoutes } from './api/documents.js';
import { healthRoutes } from './api/health.js';
import { subscriptionRoutes } from './api/subscriptions.js';
import { userRoutes } from './api/users.js';
import type { Deps } from './deps.js';
import { AppError } from './errors.js';
import { fileRoutes } from './files/routes.js';
import { inboundRoutes } from './inbound/routes.js';
import { notifyRoutes } from './notify/routes.js';
import { jobRoutes } from './ops/jobs-routes.js';
import { inboundMetrics, metricsRoutes } from './ops/metrics-routes.js';
import { newRouter } from './http/router.js';
import { pageRoutes } from './page/routes.js';

/** The HTTP application: every route, one error shape. Built from deps, so tests build their own. */
export function createApp(deps: Deps) {
  const app = newRouter();
  // Every answer carries X-Request-Id (the caller's, when it is a plain token, else a new
  // one): a 500 is logged under it, so an operator finds the error a client reports.
  app.use(requestId({ limitLength: 64 }));

  // Protected by default: only the routes listed in http/auth.ts's publicRoutes go without a token.
  app.use('*', requireToken(deps));
  app.use('/webhooks/powens/*', inboundMetrics(deps.metrics));

  app.route('/', healthRoutes(deps));
  app.route('/', inboundRoutes(deps));
  app.route('/', userRoutes(deps));
  app.route('/', connectionRoutes(deps));
  app.route('/', subscriptionRoutes(deps));
  app.route('/', documentRoutes(deps));
  app.route('/', configRoutes(deps));
  app.route('/', notifyRoutes(deps));
  app.route('/', fileRoutes(deps));
  app.route('/', jobRoutes(deps));
  app.route('/', metricsRoutes(deps));
  // The operator page: HTML behind its own session cookie, not the bearer token (page/session.ts).
  app.route('/', pageRoutes(deps, (path, init) => app.request(path, init)));

  app.openAPIRegistry.registerComponent('securitySchemes', 'bearerAuth', { type: 'http', scheme: 'bearer' });
  app.doc('/openapi.json', {
    openapi: '3.0.3',
    info: { title: 'docrelay', version: '1', description: 'Bills and documents relay behind Powens sync webhooks.' },
  });

  app.notFound((c) => c.json({ error: { code: 'not_found', message: `no route for ${c.req.method} ${c.req.path}` } }, 404));
  app.onError((err, c) => {
    if (err instanceof AppError) return c.json(err.toBody(), err.status);
    // Hono's own refusals (malformed JSON, body limits…) in the one error shape.
    if (err instanceof HTTPException) {
      const code = err.status === 413 ? 'payload_too_large' : err.status < 500 ? 'invalid_payload' : 'internal_error';
      return c.json({ error: { code, message: err.message || 'bad request' } }, err.status);
    }
    const reqId = c.get('requestId');
    // Database errors are already stripped of their values (db/redact.ts); nothing of the
    // request's input is logged beside them, only where it went.
    if (isDatabaseUnavailable(err)) {
      deps.log.error({ reqId, err }, 'database unavailable');
      return c.json({ error: { code: 'database_unavailable', message: `database unavailable, retry later (request ${reqId})` } }, 503);
    }
    deps.log.error({ reqId, method: c.req.method, route: c.req.routePath, err }, 'unhandled error');
    return c.json({ error: { code: 'internal_error', message: `internal error (request ${reqId})` } }, 500);
  });
  return app;
}

function isDatabaseUnavailable(err: unknown): boolean {
  const code = (err as { code?: string })?.code ?? (err as { cause?: { code?: string } })?.cause?.code;
  return ['ECONNREFUSED', 'ECONNRESET', 'CONNECTION_CLOSED', 'CONNECTION_ENDED', 'CONNECT_TIMEOUT', '57P01', '57P03', '53300'].includes(code ?? '');
}

export type App = ReturnType<typeof createApp>;
