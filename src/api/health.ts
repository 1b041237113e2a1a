import { createRoute, z } from '@hono/zod-openapi';
import { sql } from 'drizzle-orm';
import type { Deps } from '../deps.js';
import { newRouter } from '../http/router.js';

const route = createRoute({
  method: 'get',
  path: '/health',
  summary: 'Liveness and database reachability',
  responses: {
    200: { description: 'ok', content: { 'application/json': { schema: z.object({ status: z.literal('ok') }) } } },
    503: { description: 'database unreachable', content: { 'application/json': { schema: z.object({ status: z.literal('unavailable') }) } } },
  },
});

export function healthRoutes(deps: Deps) {
  return newRouter().openapi(route, async (c) => {
    try {
      await deps.db.execute(sql`select 1`);
      return c.json({ status: 'ok' as const }, 200);
    } catch {
      return c.json({ status: 'unavailable' as const }, 503);
    }
  });
}
