import { createRoute, z } from '@hono/zod-openapi';
import { eq, sql } from 'drizzle-orm';
import type { Deps } from '../deps.js';
import { userTokens, users } from '../db/schema/index.js';
import { newRouter } from '../http/router.js';
import { hashToken, newUserToken, requireAdmin } from '../http/auth.js';
import { bearer, errorResponses, IdParam } from '../http/openapi.js';

/**
 * User tokens (CONTRACT.md §2), admin only. A user may hold several tokens (one per device or
 * session of the operator's app); each is shown once and stored hashed. Issuing one revokes
 * none: DELETE revokes them all, and a token may be given a lifetime when it is issued.
 */
const MAX_EXPIRES_IN_S = 10 * 366 * 24 * 3600;

const IssueBody = z.object({
  expires_in: z
    .number()
    .int()
    .min(1)
    .max(MAX_EXPIRES_IN_S)
    .optional()
    .openapi({ description: 'lifetime of the token in seconds; without it, the token lasts until revoked', example: 86400 }),
});

const issue = createRoute({
  method: 'post',
  path: '/users/{id}/token',
  summary: 'Issue a token for a user (admin), creating the user if it is new; optionally expiring',
  security: bearer,
  request: { params: IdParam, body: { content: { 'application/json': { schema: IssueBody } }, required: false } },
  responses: {
    201: {
      description: 'the token; shown once, stored hashed',
      content: {
        'application/json': {
          schema: z.object({
            id_user: z.number().int(),
            token: z.string(),
            expires_at: z.string().nullable().openapi({ description: 'ISO 8601, or null: valid until revoked' }),
          }),
        },
      },
    },
    ...errorResponses,
  },
});

const revoke = createRoute({
  method: 'delete',
  path: '/users/{id}/token',
  summary: 'Revoke every token of a user (admin); they answer 401 from now on',
  security: bearer,
  request: { params: IdParam },
  responses: {
    200: { description: 'revoked', content: { 'application/json': { schema: z.object({ id_user: z.number().int(), revoked: z.number().int() }) } } },
    ...errorResponses,
  },
});

export function userRoutes(deps: Deps) {
  return newRouter()
    .openapi(issue, async (c) => {
      requireAdmin(c);
      const id = Number(c.req.valid('param').id);
      const { expires_in } = c.req.valid('json') ?? {};
      const token = newUserToken();
      const row = await deps.db.transaction(async (tx) => {
        await tx.insert(users).values({ id }).onConflictDoNothing();
        const [t] = await tx
          .insert(userTokens)
          .values({ tokenHash: hashToken(token), userId: id, expiresAt: expires_in ? sql`now() + make_interval(secs => ${expires_in})` : null })
          .returning({ expiresAt: userTokens.expiresAt });
        return t;
      });
      return c.json({ id_user: id, token, expires_at: row.expiresAt?.toISOString() ?? null }, 201);
    })
    .openapi(revoke, async (c) => {
      requireAdmin(c);
      const id = Number(c.req.valid('param').id);
      const revoked = await deps.db.delete(userTokens).where(eq(userTokens.userId, id)).returning({ userId: userTokens.userId });
      return c.json({ id_user: id, revoked: revoked.length }, 200);
    });
}
