import { createRoute, z } from '@hono/zod-openapi';
import { and, eq, gte, isNotNull, lt, lte, sql } from 'drizzle-orm';
import { documentTotals, wholeMonthsBefore } from './document-totals.js';
import { readWithSettings } from '../db/one-trip.js';
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

  /**
   * Totals and date bounds over every match (document-totals.ts), then one page of it.
   * The page query has the shape of the bare one — the user's documents in the order of
   * the (user, date, id) index, stopped at the page — whatever the table's statistics say:
   * the few deleted subscriptions to hide are named by id rather than joined, as a join
   * let the planner, before any ANALYZE, sort all of the user's documents for one page.
   */
  const list = async (scope: { userId: number; subscriptionId?: number }, q: Query, hideDeletedSubscriptions: boolean) => {
    const where = [eq(documents.userId, scope.userId)];
    if (scope.subscriptionId !== undefined) where.push(eq(documents.subscriptionId, scope.subscriptionId));
    if (q.type) where.push(eq(documents.type, q.type));
    if (q.min_date) where.push(gte(documents.date, q.min_date));
    if (q.max_date) where.push(lte(documents.date, q.max_date));
    if (q.duplicates) where.push(isNotNull(documents.duplicateReason));
    // The few deleted subscriptions to hide, named by id in the same statement (an
    // uncorrelated subquery, run once): a join let the planner, before any ANALYZE, sort all
    // of the user's documents for one page.
    if (hideDeletedSubscriptions) {
      where.push(sql`${documents.subscriptionId} <> all(array(
        select ${subscriptions.id} from ${subscriptions}
        where ${subscriptions.userId} = ${scope.userId} and ${subscriptions.deleted} is not null))`);
    }
    const filter = { ...scope, type: q.type, minDate: q.min_date, maxDate: q.max_date, duplicates: q.duplicates, hideDeletedSubscriptions };
    // The totals need nothing of the page: read on another connection meanwhile.
    const totalsRead = documentTotals(db, filter);
    totalsRead.catch(() => {}); // awaited below; a failure of the page first must not leave it unhandled
    const skip = await wholeMonthsBefore(db, filter, q);
    if (skip) where.push(lt(documents.date, skip.before));
    // The page's ids first, walking the (user, date, id) index in its order; then their rows.
    // Bitmap scans are off for it: before any ANALYZE (autovacuum may be off, or not have
    // run yet after a backfill) the planner guesses a handful of rows, and with a filter it
    // then gathered every match through a bitmap and sorted them all for one page.
    const order = [sql`${documents.date} desc nulls last`, sql`${documents.id} desc nulls last`];
    const page = await readWithSettings(db, { enable_bitmapscan: 'off' }, (tx) => {
      const ids = tx
        .select({ id: documents.id })
        .from(documents)
        .where(and(...where))
        .orderBy(...order)
        .limit(q.limit)
        .offset(q.offset - (skip?.skipped ?? 0))
        .as('page');
      return tx
        .select({ d: documents, f: documentFiles })
        .from(ids)
        .innerJoin(documents, eq(documents.id, ids.id))
        .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
        .orderBy(...order);
    });

    const totals = await totalsRead;
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
      return c.json(await list({ userId }, q, !q.all), 200);
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
      return c.json(await list({ userId, subscriptionId: sub.id }, c.req.valid('query'), false), 200);
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
