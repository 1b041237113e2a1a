import { createRoute, z } from '@hono/zod-openapi';
import { and, eq } from 'drizzle-orm';
import { documentFiles, documents } from '../db/schema/index.js';
import type { Deps } from '../deps.js';
import { AppError, notFound } from '../errors.js';
import { requireAdmin, resolveUser } from '../http/auth.js';
import { bearer, errorResponses, ErrorSchema, IdParam, jsonResponse, UserParam } from '../http/openapi.js';
import { newRouter } from '../http/router.js';
import { presentDocument } from '../present/presenters.js';
import { DocumentSchema } from '../present/schemas.js';
import { announce } from './announce.js';

/**
 * `POST /users/{u}/documents/{id}/announce` (admin; README, "A bill is announced once"): announce a document
 * that was found to repeat an announced bill (`duplicate_of` set), as if it were new —
 * `document.created` and its mail, each at most once however often this is called. The
 * document keeps its `duplicate_of`. Other documents are announced by their file job.
 */
const AnnounceResponse = z
  .object({
    document: DocumentSchema,
    announced: z
      .object({ webhook: z.boolean(), email: z.boolean() })
      .openapi({ description: 'what this call sent: false when it was sent before, or the type is not notified / mailed' }),
  })
  .openapi('Announced');

const announceRoute = createRoute({
  method: 'post',
  path: '/users/{u}/documents/{id}/announce',
  summary: 'Announce a duplicate anyway (admin): document.created and mail, once',
  security: bearer,
  request: { params: UserParam.merge(IdParam) },
  responses: {
    200: jsonResponse(AnnounceResponse, 'announced (or announced before)'),
    ...errorResponses,
    409: { description: 'not a duplicate: announced by its file job', content: { 'application/json': { schema: ErrorSchema } } },
  },
});

export function announceRoutes(deps: Deps) {
  return newRouter().openapi(announceRoute, async (c) => {
    requireAdmin(c);
    const { u, id } = c.req.valid('param');
    const userId = await resolveUser(deps, c, u);
    const documentId = Number(id);
    const out = await deps.db.transaction(async (tx) => {
      const [d] = await tx
        .select({ duplicateReason: documents.duplicateReason })
        .from(documents)
        .where(and(eq(documents.id, documentId), eq(documents.userId, userId)));
      if (!d) throw notFound('document');
      if (d.duplicateReason === null) {
        throw new AppError('conflict', 'not a duplicate: a document is announced by its file job once its file is settled');
      }
      const outcome = await announce(tx, deps, documentId, { force: true });
      if (outcome.status !== 'announced') throw notFound('document');
      const [row] = await tx
        .select({ d: documents, f: documentFiles })
        .from(documents)
        .leftJoin(documentFiles, eq(documentFiles.documentId, documents.id))
        .where(eq(documents.id, documentId));
      return { document: presentDocument(row.d, row.f, deps.links), announced: { webhook: outcome.webhook, email: outcome.email } };
    });
    return c.json(out, 200);
  });
}
