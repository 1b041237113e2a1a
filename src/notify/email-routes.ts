import { createRoute, z } from '@hono/zod-openapi';
import { desc, eq, sql } from 'drizzle-orm';
import type { InferSelectModel } from 'drizzle-orm';
import { resolveUser, userIdFor } from '../http/auth.js';
import { bearer, errorResponses, UserParam } from '../http/openapi.js';
import type { Deps } from '../deps.js';
import { emailDeliveries, emailSettings, users } from '../db/schema/index.js';
import { notFound } from '../errors.js';
import { text } from '../lib/input.js';
import { newRouter } from '../http/router.js';

/**
 * Per-user email delivery of announced documents (`/users/{u}/email-delivery`). `status`
 * tells whether mail can go out at all: `smtp_not_configured` while SMTP_URL is unset (the
 * setting is kept, and each document's delivery records that error instead of being
 * retried).
 */

const SettingSchema = z
  .object({
    id_user: z.number().int(),
    to: z.string(),
    document_types: z.array(z.string()).nullable().openapi({ description: 'null: the installation’s notify.document_types' }),
    status: z.enum(['active', 'smtp_not_configured']),
    updated_at: z.string(),
  })
  .openapi('EmailDelivery');

const PutBody = z.object({
  to: z.email().max(320),
  document_types: z.array(text.regex(/^[A-Za-z0-9_\-]+$/, 'a document type (letters, digits, _ and -)')).max(50).optional(),
});

const ok = (description: string) => ({ description, content: { 'application/json': { schema: SettingSchema } } });
const path = '/users/{u}/email-delivery';
const put = createRoute({
  method: 'put',
  path,
  summary: 'Mail each announced document to this address, with its file attached; creates the user when it is new',
  security: bearer,
  request: { params: UserParam, body: { content: { 'application/json': { schema: PutBody } }, required: true } },
  responses: { 200: ok('the setting'), ...errorResponses },
});
const get = createRoute({ method: 'get', path, summary: "The user's email delivery", security: bearer, request: { params: UserParam }, responses: { 200: ok('the setting'), ...errorResponses } });
const del = createRoute({
  method: 'delete',
  path,
  summary: 'Stop mailing documents to this user',
  security: bearer,
  request: { params: UserParam },
  responses: { 204: { description: 'removed' }, ...errorResponses },
});

const MailSchema = z
  .object({
    document_id: z.number().int(),
    to: z.string(),
    message_id: z.string(),
    status: z.enum(['pending', 'sending', 'sent', 'failed']).openapi({ description: '`sending`: an attempt is under way (or the worker stopped during it; it is tried again)' }),
    attempts: z.number().int(),
    error: z.string().nullable(),
    possible_duplicate: z
      .boolean()
      .openapi({ description: 'an attempt stopped with its outcome unknown and the mail was sent again (same Message-ID): the recipient may hold two copies' }),
    sent_at: z.string().nullable(),
    updated_at: z.string(),
  })
  .openapi('DocumentMail');
const mails = createRoute({
  method: 'get',
  path: `${path}/mails`,
  summary: "The user's document mails, most recent first",
  security: bearer,
  request: { params: UserParam, query: z.object({ limit: z.coerce.number().int().min(1).max(1000).default(100) }) },
  responses: { 200: { description: 'the mails', content: { 'application/json': { schema: z.object({ mails: z.array(MailSchema) }) } } }, ...errorResponses },
});

export function emailRoutes(deps: Deps) {
  const status = deps.config.smtpUrl ? ('active' as const) : ('smtp_not_configured' as const);
  const present = (r: InferSelectModel<typeof emailSettings>) => ({
    id_user: r.userId,
    to: r.to,
    document_types: r.documentTypes,
    status,
    updated_at: r.updatedAt.toISOString(),
  });
  return newRouter()
    .openapi(put, async (c) => {
      // An operator sets a user's mail up at sign-up, before any sync brought the user:
      // the user is created, as POST /users/{id}/token does (CONTRACT.md §8).
      const userId = userIdFor(c, c.req.valid('param').u);
      const body = c.req.valid('json');
      const values = { userId, to: body.to, documentTypes: body.document_types ?? null };
      const row = await deps.db.transaction(async (tx) => {
        await tx.insert(users).values({ id: userId }).onConflictDoNothing();
        const [r] = await tx
          .insert(emailSettings)
          .values(values)
          .onConflictDoUpdate({ target: emailSettings.userId, set: { to: values.to, documentTypes: values.documentTypes, updatedAt: sql`now()` } })
          .returning();
        return r;
      });
      return c.json(present(row), 200);
    })
    .openapi(get, async (c) => {
      const userId = await resolveUser(deps, c, c.req.valid('param').u);
      const [row] = await deps.db.select().from(emailSettings).where(eq(emailSettings.userId, userId));
      if (!row) throw notFound('email delivery');
      return c.json(present(row), 200);
    })
    .openapi(mails, async (c) => {
      const userId = await resolveUser(deps, c, c.req.valid('param').u);
      const rows = await deps.db
        .select()
        .from(emailDeliveries)
        .where(eq(emailDeliveries.userId, userId))
        .orderBy(desc(emailDeliveries.updatedAt), desc(emailDeliveries.documentId))
        .limit(c.req.valid('query').limit);
      return c.json(
        {
          mails: rows.map((m) => ({
            document_id: m.documentId,
            to: m.to,
            message_id: m.messageId,
            status: m.status as z.infer<typeof MailSchema>['status'],
            attempts: m.attempts,
            error: m.error,
            possible_duplicate: m.possibleDuplicate,
            sent_at: m.sentAt?.toISOString() ?? null,
            updated_at: m.updatedAt.toISOString(),
          })) satisfies z.infer<typeof MailSchema>[],
        },
        200,
      );
    })
    .openapi(del, async (c) => {
      const userId = await resolveUser(deps, c, c.req.valid('param').u);
      const rows = await deps.db.delete(emailSettings).where(eq(emailSettings.userId, userId)).returning({ id: emailSettings.userId });
      if (rows.length === 0) throw notFound('email delivery');
      return c.body(null, 204);
    });
}
