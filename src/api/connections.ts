import { createRoute, z } from '@hono/zod-openapi';
import { and, asc, eq } from 'drizzle-orm';
import { eraseConnection } from '../archive/erase.js';
import { presentConnection } from '../present/presenters.js';
import { ConnectionSchema } from '../present/schemas.js';
import type { Deps } from '../deps.js';
import { connections } from '../db/schema/index.js';
import { notFound } from '../errors.js';
import { newRouter } from '../http/router.js';
import { resolveUser } from '../http/auth.js';
import { bearer, errorResponses, IdParam, jsonResponse, UserParam } from '../http/openapi.js';

const list = createRoute({
  method: 'get',
  path: '/users/{u}/connections',
  summary: "A user's connections",
  security: bearer,
  request: { params: UserParam },
  responses: { 200: jsonResponse(z.object({ connections: z.array(ConnectionSchema) }), 'connections'), ...errorResponses },
});

const get = createRoute({
  method: 'get',
  path: '/users/{u}/connections/{id}',
  summary: 'One connection',
  security: bearer,
  request: { params: UserParam.merge(IdParam) },
  responses: { 200: jsonResponse(ConnectionSchema, 'the connection'), ...errorResponses },
});

const remove = createRoute({
  method: 'delete',
  path: '/users/{u}/connections/{id}',
  summary: 'Erase a connection with its subscriptions, documents and files',
  security: bearer,
  request: { params: UserParam.merge(IdParam) },
  responses: { 204: { description: 'erased' }, ...errorResponses },
});

export function connectionRoutes(deps: Deps) {
  const { db } = deps;
  return newRouter()
    .openapi(list, async (c) => {
      const userId = await resolveUser(deps, c, c.req.valid('param').u);
      const rows = await db.select().from(connections).where(eq(connections.userId, userId)).orderBy(asc(connections.id));
      return c.json({ connections: rows.map(presentConnection) }, 200);
    })
    .openapi(get, async (c) => {
      const { u, id } = c.req.valid('param');
      const userId = await resolveUser(deps, c, u);
      const [row] = await db
        .select()
        .from(connections)
        .where(and(eq(connections.id, Number(id)), eq(connections.userId, userId)));
      if (!row) throw notFound('connection');
      return c.json(presentConnection(row), 200);
    })
    .openapi(remove, async (c) => {
      const { u, id } = c.req.valid('param');
      const userId = await resolveUser(deps, c, u);
      await db.transaction(async (tx) => {
        const [row] = await tx
          .select({ id: connections.id })
          .from(connections)
          .where(and(eq(connections.id, Number(id)), eq(connections.userId, userId)));
        if (!row) throw notFound('connection');
        await eraseConnection(tx, row.id);
      });
      return c.body(null, 204);
    });
}
