import { createHash, createHmac, randomBytes, timingSafeEqual } from 'node:crypto';

/**
 * The operator page's login session, without a table: the cookie is a random session id,
 * its expiry and an HMAC of both under a key derived from the admin token. The admin token
 * itself never leaves the server; changing it ends every session. The CSRF token of a
 * session is another HMAC of its id (a synchronizer token that needs no storage either):
 * a form of another site can carry the cookie (it cannot here: SameSite=Strict) but never
 * this token.
 */
export const SESSION_COOKIE = 'docrelay_session';
export const LOGIN_CSRF_COOKIE = 'docrelay_login';
export const sessionTtlS = 12 * 3600;

export interface Session {
  id: string;
  expiresAt: number;
  csrf: string;
}

const keyOf = (adminToken: string) => createHmac('sha256', adminToken).update('docrelay operator page session v1').digest();
const mac = (key: Buffer, what: string) => createHmac('sha256', key).update(what).digest('base64url');

export function sameString(a: string, b: string): boolean {
  // Hashing first gives equal lengths, so the comparison is constant-time whatever the input.
  return timingSafeEqual(createHash('sha256').update(a).digest(), createHash('sha256').update(b).digest());
}

export function newSession(adminToken: string, now = Date.now()): { cookie: string; session: Session } {
  const key = keyOf(adminToken);
  const id = randomBytes(24).toString('base64url');
  const expiresAt = Math.floor(now / 1000) + sessionTtlS;
  const body = `${id}.${expiresAt}`;
  return { cookie: `${body}.${mac(key, `session:${body}`)}`, session: { id, expiresAt, csrf: mac(key, `csrf:${id}`) } };
}

/** The session a cookie value stands for, or null (forged, expired, or of another admin token). */
export function readSession(adminToken: string, cookie: string | undefined, now = Date.now()): Session | null {
  if (!cookie || cookie.length > 200) return null;
  const m = /^([A-Za-z0-9_-]{32})\.(\d{1,12})\.([A-Za-z0-9_-]{43})$/.exec(cookie);
  if (!m) return null;
  const key = keyOf(adminToken);
  const [, id, exp, sig] = m;
  if (!sameString(sig, mac(key, `session:${id}.${exp}`))) return null;
  if (Number(exp) * 1000 <= now) return null;
  return { id, expiresAt: Number(exp), csrf: mac(key, `csrf:${id}`) };
}

export const newLoginNonce = () => randomBytes(24).toString('base64url');
