import { serve, type ServerType } from '@hono/node-server';
import { createRoute, z } from '@hono/zod-openapi';
import { Hono, type MiddlewareHandler } from 'hono';
import type { Deps } from '../deps.js';
import { requireAdmin } from '../http/auth.js';
import { bearer, errorResponses } from '../http/openapi.js';
import { newRouter } from '../http/router.js';
import { jobCatalog } from '../jobs/catalog.js';
import { scrape, type Metrics } from './metrics.js';

const tasks = Object.keys(jobCatalog);
const inboundEvents = new Set(['CONNECTION_SYNCED', 'CONNECTION_DELETED', 'USER_DELETED']);
const textFormat = 'text/plain; version=0.0.4; charset=utf-8';

const route = createRoute({
  method: 'get',
  path: '/metrics',
  summary: 'Prometheus metrics (admin; unauthenticated on METRICS_PORT when set)',
  security: bearer,
  responses: {
    200: { description: 'Prometheus text format', content: { 'text/plain': { schema: z.string() } } },
    ...errorResponses,
  },
});

export function metricsRoutes(deps: Deps) {
  return newRouter().openapi(route, async (c) => {
    requireAdmin(c);
    return c.text(await scrape(deps.metrics, deps.db, tasks), 200, { 'content-type': textFormat });
  });
}

/**
 * METRICS_PORT: `/metrics` without a token on a port of its own, for a scraper on a private
 * network; nothing else is served there.
 */
export function serveMetrics(deps: Deps, port: number, host: string, onListening?: (port: number) => void): ServerType {
  const app = new Hono();
  app.get('/metrics', async (c) => c.body(await scrape(deps.metrics, deps.db, tasks), 200, { 'content-type': textFormat }));
  app.notFound((c) => c.json({ error: { code: 'not_found', message: 'only /metrics is served here' } }, 404));
  app.onError((err, c) => {
    deps.log.error({ err }, 'metrics scrape failed');
    return c.json({ error: { code: 'internal_error', message: 'metrics unavailable' } }, 503);
  });
  return serve({ fetch: app.fetch, port, hostname: host }, (info) => onListening?.(info.port));
}

/**
 * Counts inbound webhooks from their answers, around the route (inbound/routes.ts stays
 * about webhooks): the event, the outcome — `processed`, `duplicate`, `stale` or the error
 * code — the time taken, and the changes a processed sync reports in its summary.
 */
export function inboundMetrics(metrics: Metrics): MiddlewareHandler {
  return async (c, next) => {
    const started = performance.now();
    await next();
    const name = c.req.path.slice(c.req.path.lastIndexOf('/') + 1);
    const event = inboundEvents.has(name) ? name : 'unknown';
    let body: { status?: string; summary?: SyncSummary; error?: { code?: string } } = {};
    try {
      body = await c.res.clone().json();
    } catch {
      // not JSON: counted under its HTTP status
    }
    const outcome = body.status ?? body.error?.code ?? `http_${c.res.status}`;
    metrics.inboundWebhooks.inc({ event, outcome });
    metrics.inboundDuration.observe({ event }, (performance.now() - started) / 1000);
    const s = body.summary;
    if (s) {
      metrics.documents.inc({ change: 'added' }, s.documents?.added ?? 0);
      metrics.documents.inc({ change: 'updated' }, s.documents?.updated ?? 0);
      metrics.subscriptions.inc({ change: 'added' }, s.subscriptions?.added ?? 0);
      metrics.subscriptions.inc({ change: 'archived' }, s.subscriptions?.deleted ?? 0);
      metrics.subscriptions.inc({ change: 'restored' }, s.subscriptions?.restored ?? 0);
    }
  };
}

type SyncSummary = {
  subscriptions?: { added?: number; deleted?: number; restored?: number };
  documents?: { added?: number; updated?: number };
};
