import { lookup } from 'node:dns/promises';
import { isIP } from 'node:net';
import { isPublicAddress } from '../net/address.js';

/**
 * Check a customer's endpoint URL when it is registered: http or https, no credentials in
 * it, and — unless FETCH_ALLOW_PRIVATE_NETWORKS=1 — no host that is or resolves to a
 * private, loopback or link-local address. Returns the problem, or null when it is fine.
 * A name that does not resolve yet is accepted: every delivery checks the addresses again
 * on the connection it makes (notify/http.ts), which is the check that counts.
 */
export async function endpointUrlProblem(raw: string, allowPrivate: boolean): Promise<string | null> {
  let u: URL;
  try {
    u = new URL(raw);
  } catch {
    return 'not a URL';
  }
  if (u.protocol !== 'http:' && u.protocol !== 'https:') return 'only http and https URLs are accepted';
  if (u.username || u.password) return 'credentials in the URL are not accepted';
  if (allowPrivate) return null;
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  if (isIP(host)) return isPublicAddress(host) ? null : 'private, loopback and link-local addresses are refused';
  if (host === 'localhost' || host.endsWith('.localhost')) return 'private, loopback and link-local addresses are refused';
  const addresses = await Promise.race([
    lookup(host, { all: true }).catch(() => []),
    new Promise<[]>((resolve) => setTimeout(() => resolve([]), 3000).unref()),
  ]);
  if (addresses.some((a) => !isPublicAddress(a.address))) return `${host} resolves to a private address`;
  return null;
}
