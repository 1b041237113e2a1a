import { createRoute, z } from '@hono/zod-openapi';
import { and, asc, eq, isNull, type SQL } from 'drizzle-orm';
import { presentSubscription } from '../present/presenters.js';
import { SubscriptionSchema } from '../present/schemas.js';
import type { Deps } from '../deps.js';
import { connections, subscriptions } from '../db/schema/index.js';
import { notFound } from '../errors.js';
import { newRouter } from '../http/router.js';
import { resolveUser } from '../http/auth.js';
import { allFlag, bearer, errorResponses, IdParam, jsonResponse, UserParam } from '../http/openapi.js';

const ListResponse = z.object({ subscriptions: z.array(SubscriptionSchema), total: z.number().int() });
const ListQuery = z.object({ all: allFlag });

const listForUser = createRoute({
  method: 'get',
  path: '/users/{u}/subscriptions',
  summary: "A user's subscriptions (deleted ones only with ?all)",
  security: bearer,
  request: { params: UserParam, query: ListQuery },
  responses: { 200: jsonResponse(ListResponse), ...errorResponses },
});

const listForConnection = createRoute({
  method: 'get',
  path: '/users/{u}/connections/{id}/subscriptions',
  summary: "A connection's subscriptions (deleted ones only with ?all)",
  security: bearer,
  request: { params: UserParam.merge(IdParam), query: ListQuery },
  responses: { 200: jsonResponse(ListResponse), ...errorResponses },
});

const getOne = createRoute({
  method: 'get',
  path: '/users/{u}/subscriptions/{id}',
  summary: 'One subscription, deleted or not',
  security: bearer,
  request: { params: UserParam.merge(IdParam) },
  responses: { 200: jsonResponse(SubscriptionSchema), ...errorResponses },
});

export function subscriptionRoutes(deps: Deps) {
  const { db } = deps;
  const list = async (where: SQL[], all: boolean) => {
    if (!all) where.push(isNull(subscriptions.deleted));
    const rows = await db.select().from(subscriptions).where(and(...where)).orderBy(asc(subscriptions.id));
    return { subscriptions: rows.map(presentSubscription), total: rows.length };
  };

  return newRouter()
    .openapi(listForUser, async (c) => {
      const userId = await resolveUser(deps, c, c.req.valid('param').u);
      return c.json(await list([eq(subscriptions.userId, userId)], c.req.valid('query').all), 200);
    })
    .openapi(listForConnection, async (c) => {
      const { u, id } = c.req.valid('param');
      const userId = await resolveUser(deps, c, u);
      const [conn] = await db
        .select({ id: connections.id })
        .from(connections)
        .where(and(eq(connections.id, Number(id)), eq(connections.userId, userId)));
      if (!conn) throw notFound('connection');
      return c.json(await list([eq(subscriptions.connectionId, conn.id), eq(subscriptions.userId, userId)], c.req.valid('query').all), 200);
    })
    .openapi(getOne, async (c) => {
      const { u, id } = c.req.valid('param');
      const userId = await resolveUser(deps, c, u);
      const [row] = await db
        .select()
        .from(subscriptions)
        .where(and(eq(subscriptions.id, Number(id)), eq(subscriptions.userId, userId)));
      if (!row) throw notFound('subscription');
      return c.json(presentSubscription(row), 200);
    });
}
