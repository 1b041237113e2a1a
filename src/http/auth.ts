import { createHash, randomBytes, timingSafeEqual } from 'node:crypto';
import { and, eq, gt, isNull, or, sql } from 'drizzle-orm';
import type { Context, MiddlewareHandler } from 'hono';
import type { Deps } from '../deps.js';
import { userTokens, users } from '../db/schema/index.js';
import { AppError, notFound } from '../errors.js';

/**
 * Bearer auth (README: API at a glance). The admin token reaches everything; a user token
 * reaches only its own user, and anything else answers 404 — never 403, so ids of other
 * users' objects cannot be probed.
 */

export type Principal = { kind: 'admin' } | { kind: 'user'; userId: number };
export type AuthEnv = { Variables: { principal: Principal } };

export const hashToken = (token: string) => createHash('sha256').update(token).digest('hex');
export const newUserToken = () => `drt_${randomBytes(32).toString('base64url')}`;

function sameSecret(a: string, b: string): boolean {
  // Hashing first gives equal lengths, so the comparison is constant-time whatever the input.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

/**
 * The only routes reachable without a bearer token, each with what guards it instead
 * (CONTRACT.md §2, §10). Every other path needs a token — a route added tomorrow too, and a
 * path that matches no route (401 before 404: nothing about routes is told).
 */
export const publicRoutes = {
  '/webhooks/powens/*': 'Powens HMAC signature (inbound/signature.ts)',
  '/files/*': 'signed, expiring link (lib/file-links.ts)',
  '/health': 'nobody’s data',
  '/openapi.json': 'nobody’s data',
  '/': 'operator session cookie (page/session.ts)',
  '/login': 'the operator’s login form, which takes the admin token',
  '/logout': 'operator session cookie and CSRF token',
  '/ui/*': 'operator session cookie and CSRF token',
} as const;

export const isPublicPath = (path: string): boolean =>
  Object.keys(publicRoutes).some((p) => (p.endsWith('/*') ? path.startsWith(p.slice(0, -1)) : path === p));

/** Bearer auth on every path but the public ones; mounted once, before every route. */
export function requireToken(deps: Deps): MiddlewareHandler<AuthEnv> {
  const auth = authenticate(deps);
  return (c, next) => (isPublicPath(c.req.path) ? next() : auth(c, next));
}

export function authenticate(deps: Deps): MiddlewareHandler<AuthEnv> {
  return async (c, next) => {
    const header = c.req.header('authorization') ?? '';
    const m = /^Bearer\s+(\S+)\s*$/i.exec(header);
    if (!m) throw new AppError('unauthorized', 'a bearer token is required');
    const token = m[1];
    if (sameSecret(token, deps.config.adminToken)) {
      c.set('principal', { kind: 'admin' });
    } else {
      const [row] = await deps.db
        .select({ userId: userTokens.userId })
        .from(userTokens)
        .where(and(eq(userTokens.tokenHash, hashToken(token)), or(isNull(userTokens.expiresAt), gt(userTokens.expiresAt, sql`now()`))));
      if (!row) throw new AppError('unauthorized', 'unknown, revoked or expired token');
      c.set('principal', { kind: 'user', userId: row.userId });
    }
    await next();
  };
}

export function requireAdmin(c: Context<AuthEnv>): void {
  // A user token must not learn that admin routes exist.
  if (c.get('principal').kind !== 'admin') throw notFound();
}

/**
 * `{u}` of `/users/{u}/…` → the user id the caller may act on. `me` is the caller's own
 * user; a numeric id is the admin's choice or the user's own id. The user must exist.
 */
export async function resolveUser(deps: Deps, c: Context<AuthEnv>, u: string): Promise<number> {
  const id = userIdFor(c, u);
  // A user token names only its own user, and its row exists only while that user does
  // (cascade): authenticate() has just read it. One round trip less on every user request.
  if (c.get('principal').kind === 'user') return id;
  const [row] = await deps.db.select({ id: users.id }).from(users).where(eq(users.id, id));
  if (!row) throw notFound('user');
  return id;
}

/** The user id `{u}` names for this caller, whether or not that user exists yet. */
export function userIdFor(c: Context<AuthEnv>, u: string): number {
  const p = c.get('principal');
  let id: number;
  if (u === 'me') {
    if (p.kind !== 'user') throw new AppError('not_found', "the admin token has no user: use /users/{id}/…");
    id = p.userId;
  } else {
    if (!/^\d{1,16}$/.test(u) || !Number.isSafeInteger(Number(u))) throw notFound('user');
    id = Number(u);
    if (p.kind === 'user' && p.userId !== id) throw notFound('user');
  }
  return id;
}
