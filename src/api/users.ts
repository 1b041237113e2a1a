import { createRoute, z } from '@hono/zod-openapi';
import type { Deps } from '../deps.js';
import { userTokens, users } from '../db/schema/index.js';
import { newRouter } from '../http/router.js';
import { hashToken, newUserToken, requireAdmin } from '../http/auth.js';
import { bearer, errorResponses, IdParam } from '../http/openapi.js';

const route = createRoute({
  method: 'post',
  path: '/users/{id}/token',
  summary: 'Issue a token for a user (admin), creating the user if it is new',
  security: bearer,
  request: { params: IdParam },
  responses: {
    201: {
      description: 'the token; shown once, stored hashed',
      content: { 'application/json': { schema: z.object({ id_user: z.number().int(), token: z.string() }) } },
    },
    ...errorResponses,
  },
});

export function userRoutes(deps: Deps) {
  return newRouter().openapi(route, async (c) => {
    requireAdmin(c);
    const id = Number(c.req.valid('param').id);
    const token = newUserToken();
    await deps.db.transaction(async (tx) => {
      await tx.insert(users).values({ id }).onConflictDoNothing();
      await tx.insert(userTokens).values({ tokenHash: hashToken(token), userId: id });
    });
    return c.json({ id_user: id, token }, 201);
  });
}
