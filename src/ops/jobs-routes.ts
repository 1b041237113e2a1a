import { createRoute, z } from '@hono/zod-openapi';
import { requireAdmin } from '../http/auth.js';
import { bearer, errorResponses, jsonResponse } from '../http/openapi.js';
import type { Deps } from '../deps.js';
import { AppError, notFound } from '../errors.js';
import { newRouter } from '../http/router.js';
import { discardJob, listFailedJobs, retryFailedJob, type JobAction } from '../jobs/failed.js';

/** Jobs that failed for good: listed, retried, discarded. */
const FailedJobSchema = z
  .object({ id: z.string(), task: z.string(), attempts: z.number().int(), last_error: z.string().nullable(), failed_at: z.string() })
  .openapi('FailedJob');

/** graphile-worker job ids are bigints: up to 18 digits always fit. */
export const JobIdParam = z.object({
  id: z
    .string()
    .regex(/^\d{1,18}$/, 'a numeric job id')
    .openapi({ param: { name: 'id', in: 'path' }, example: '42' }),
});

const conflict = { 409: jsonResponse(z.object({ error: z.object({ code: z.string(), message: z.string() }) }), 'the job is running, or has not failed') };

const list = createRoute({
  method: 'get',
  path: '/jobs/failed',
  summary: 'Jobs that failed for good, newest first (admin)',
  security: bearer,
  request: { query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }) },
  responses: { 200: jsonResponse(z.object({ jobs: z.array(FailedJobSchema) }), 'failed jobs'), ...errorResponses },
});

const retry = createRoute({
  method: 'post',
  path: '/jobs/{id}/retry',
  summary: 'Run a failed job again now, with a fresh count of attempts (admin)',
  security: bearer,
  request: { params: JobIdParam },
  responses: { 202: jsonResponse(z.object({ id: z.string(), task: z.string() }), 'queued again'), ...errorResponses, ...conflict },
});

const discard = createRoute({
  method: 'delete',
  path: '/jobs/{id}',
  summary: 'Discard a job that is not running (admin)',
  security: bearer,
  request: { params: JobIdParam },
  responses: { 204: { description: 'discarded' }, ...errorResponses, ...conflict },
});

export function refusalOf(action: Exclude<JobAction, { ok: true }>): AppError {
  if (action.reason === 'not_found') return notFound('job');
  return new AppError('conflict', action.reason === 'running' ? 'the job is running' : 'the job has not failed');
}

export function jobRoutes(deps: Deps) {
  return newRouter()
    .openapi(list, async (c) => {
      requireAdmin(c);
      return c.json({ jobs: await listFailedJobs(deps.db, c.req.valid('query').limit) }, 200);
    })
    .openapi(retry, async (c) => {
      requireAdmin(c);
      const { id } = c.req.valid('param');
      const done = await retryFailedJob(deps.db, id);
      if (!done.ok) throw refusalOf(done);
      deps.log.info({ jobId: id, task: done.task }, 'failed job retried by the operator');
      return c.json({ id, task: done.task }, 202);
    })
    .openapi(discard, async (c) => {
      requireAdmin(c);
      const { id } = c.req.valid('param');
      const done = await discardJob(deps.db, id);
      if (!done.ok) throw refusalOf(done);
      deps.log.info({ jobId: id, task: done.task }, 'job discarded by the operator');
      return c.body(null, 204);
    });
}
