import { createRoute, z } from '@hono/zod-openapi';
import { and, desc, eq, gte, isNotNull, isNull, lte, max, min, count, sql, type SQL } from 'drizzle-orm';
import { presentDocument } from '../present/presenters.js';
import { DocumentSchema } from '../present/schemas.js';
import type { Deps } from '../deps.js';
import { documentFiles, documents, subscriptions } from '../db/schema/index.js';
import { notFound } from '../errors.js';
import { newRouter } from '../http/router.js';
import { resolveUser } from '../http/auth.js';
import { allFlag, bearer, errorResponses, IdParam, jsonResponse, UserParam } from '../http/openapi.js';
import { calendarDate, text } from '../lib/input.js';

const ListQuery = z.object({
  limit: z.coerce.number().int().min(1).max(1000).default(100),
  offset: z.coerce.number().int().min(0).max(Number.MAX_SAFE_INTEGER).default(0),
  type: text.min(1).optional(),
  min_date: calendarDate.optional(),
  max_date: calendarDate.optional(),
  all: allFlag,
  duplicates: z
    .string()
    .optional()
    .openapi({ description: 'present (any value): only the documents found to repeat a bill already announced (`duplicate_of` set), which were not announced' })
    .transform((v) => v !== undefined),
});
const ListResponse = z.object({
  documents: z.array(DocumentSchema),
  total: z.number().int(),
  first_date: z.string().nullable(),
  last_date: z.string().nullable(),
  result_min_date: z.string().nullable(),
  result_max_date: z.string().nullable(),
});

const listForUser = createRoute({
  method: 'get',
  path: '/users/{u}/documents',
  summary: "A user's documents, newest first (those of deleted subscriptions only with ?all)",
  security: bearer,
  request: { params: UserParam, query: ListQuery },
  responses: { 200: jsonResponse(ListResponse), ...errorResponses },
});

const listForSubscription = createRoute({
  method: 'get',
  path: '/users/{u}/subscriptions/{id}/documents',
  summary: "A subscription's documents, newest first",
  security: bearer,
  request: { params: UserParam.merge(IdParam), query: ListQuery },
  responses: { 200: jsonResponse(ListResponse), ...errorResponses },
});

const getOne = createRoute({
  method: 'get',
  path: '/users/{u}/documents/{id}',
  summary: 'One document',
  security: bearer,
  request: { params: UserParam.merge(IdParam) },
  responses: { 200: jsonResponse(DocumentSchema), ...errorResponses },
});

type Query = z.infer<typeof ListQuery>;

export function documentRoutes(deps: Deps) {
  const { db } = deps;

  /** Totals and date bounds over every match, then one page of it. */
  const list = async (scope: SQL[], q: Query, hideDeletedSubscriptions: boolean) => {
    const where = [...scope];
    if (q.type) where.push(eq(documents.type, q.type));
    if (q.min_date) where.push(gte(documents.date, q.min_date));
    if (q.max_date) where.push(lte(documents.date, q.max_date));
    if (q.duplicates) where.push(isNotNull(documents.duplicateReason));
    const docFilter = and(...where);
    const subFilter = hideDeletedSubscriptions ? isNull(subscriptions.deleted) : undefined;

    // Totals are grouped by subscription before the join: an index-only scan of
    // (user_id, subscription_id, date) and a join of one row per subscription, about half
    // the time of joining every document (bench/read.ts).
    const perSubscription = db
      .select({ subscriptionId: documents.subscriptionId, n: count().as('n'), first: min(documents.date).as('first'), last: max(documents.date).as('last') })
      .from(documents)
      .where(docFilter)
      .groupBy(documents.subscriptionId)
      .as('per_subscription');
    const [totals] = await db
      .select({
        total: sql<number>`coalesce(sum(${perSubscription.n}), 0)::int`,
        first: sql<string | null>`min(${perSubscription.first})`,
        last: sql<string | null>`max(${perSubscription.last})`,
      })
      .from(perSubscription)
      .innerJoin(subscriptions, eq(subscriptions.id, perSubscription.subscriptionId))
      .where(subFilter);
    const page = await db
      .select({ d: documents, f: documentFiles })
      .from(documents)
      .innerJoin(subscriptions, eq(subscriptions.id, documents.subscriptionId))
      .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
      .where(and(docFilter, subFilter))
      .orderBy(sql`${documents.date} desc nulls last`, desc(documents.id))
      .limit(q.limit)
      .offset(q.offset);

    const dates = page.map((r) => r.d.date).filter((d): d is string => d !== null).sort();
    return {
      documents: page.map((r) => presentDocument(r.d, r.f, deps.links)),
      total: totals.total,
      first_date: totals.first,
      last_date: totals.last,
      result_min_date: dates[0] ?? null,
      result_max_date: dates.at(-1) ?? null,
    };
  };

  return newRouter()
    .openapi(listForUser, async (c) => {
      const userId = await resolveUser(deps, c, c.req.valid('param').u);
      const q = c.req.valid('query');
      return c.json(await list([eq(documents.userId, userId)], q, !q.all), 200);
    })
    .openapi(listForSubscription, async (c) => {
      const { u, id } = c.req.valid('param');
      const userId = await resolveUser(deps, c, u);
      const [sub] = await db
        .select({ id: subscriptions.id })
        .from(subscriptions)
        .where(and(eq(subscriptions.id, Number(id)), eq(subscriptions.userId, userId)));
      if (!sub) throw notFound('subscription');
      // The caller's documents of it, not every row that points at it: ownership is
      // checked on each row read, not inferred from the parent (issue 8).
      return c.json(await list([eq(documents.subscriptionId, sub.id), eq(documents.userId, userId)], c.req.valid('query'), false), 200);
    })
    .openapi(getOne, async (c) => {
      const { u, id } = c.req.valid('param');
      const userId = await resolveUser(deps, c, u);
      const [row] = await db
        .select({ d: documents, f: documentFiles })
        .from(documents)
        .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
        .where(and(eq(documents.id, Number(id)), eq(documents.userId, userId)));
      if (!row) throw notFound('document');
      return c.json(presentDocument(row.d, row.f, deps.links), 200);
    });
}
