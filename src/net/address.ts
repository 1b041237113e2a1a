import { lookup as dnsLookup, type LookupAddress } from 'node:dns';
import { BlockList, isIP } from 'node:net';

/**
 * Which IP addresses the service may connect to on a caller's behalf (SSRF protection): a
 * document download (files/fetch.ts) and a customer webhook delivery (notify/http.ts) go
 * through the same rule, below.
 *
 * Everything that is not global unicast is refused: loopback, RFC 1918, CGNAT, link-local
 * (cloud metadata at 169.254.169.254 and fd00:ec2::254), multicast, unspecified,
 * documentation, benchmarking and reserved ranges, and the IPv6 forms that embed an IPv4
 * address (IPv4-mapped, IPv4-compatible, NAT64, 6to4, Teredo), which could smuggle any of
 * the above.
 */
// Two lists: Node's BlockList matches IPv4 addresses against IPv6 rules through their
// mapped form, so one list holding ::ffff:0:0/96 would refuse every IPv4 address.
const reserved4 = new BlockList();
const reserved6 = new BlockList();
const v4: [string, number][] = [
  ['0.0.0.0', 8], // "this network", unspecified
  ['10.0.0.0', 8], // private
  ['100.64.0.0', 10], // carrier-grade NAT (also Alibaba's metadata 100.100.100.200)
  ['127.0.0.0', 8], // loopback
  ['169.254.0.0', 16], // link-local, cloud metadata
  ['172.16.0.0', 12], // private
  ['192.0.0.0', 24], // IETF protocol assignments
  ['192.0.2.0', 24], // documentation
  ['192.88.99.0', 24], // 6to4 relay anycast
  ['192.168.0.0', 16], // private
  ['198.18.0.0', 15], // benchmarking
  ['198.51.100.0', 24], // documentation
  ['203.0.113.0', 24], // documentation
  ['224.0.0.0', 4], // multicast
  ['240.0.0.0', 4], // reserved, broadcast
];
const v6: [string, number][] = [
  ['::', 96], // unspecified, loopback (::1) and the deprecated IPv4-compatible form
  ['::ffff:0:0', 96], // IPv4-mapped
  ['64:ff9b::', 96], // NAT64
  ['64:ff9b:1::', 48], // local-use NAT64
  ['100::', 64], // discard
  ['2001::', 23], // IETF protocol assignments, Teredo (2001::/32)
  ['2001:db8::', 32], // documentation
  ['2002::', 16], // 6to4
  ['fc00::', 7], // unique local (AWS metadata fd00:ec2::254)
  ['fe80::', 10], // link-local
  ['fec0::', 10], // old site-local
  ['ff00::', 8], // multicast
];
for (const [net, prefix] of v4) reserved4.addSubnet(net, prefix, 'ipv4');
for (const [net, prefix] of v6) reserved6.addSubnet(net, prefix, 'ipv6');

/** True only for a global unicast address; false for anything reserved or not an IP at all. */
export function isPublicAddress(address: string): boolean {
  const ip = address.replace(/^\[|\]$/g, '').replace(/%.*$/, ''); // brackets, IPv6 zone id
  const family = isIP(ip);
  if (family === 4) return !reserved4.check(ip, 'ipv4');
  // ::ffff:0:0/96 refuses every IPv4-mapped spelling (::ffff:127.0.0.1, ::ffff:7f00:1…).
  if (family === 6) return !reserved6.check(ip, 'ipv6');
  return false;
}

/** Which addresses may be connected to; tests narrow it (loopback is all they can reach). */
export type AddressPolicy = (ip: string) => boolean;

/** The `code` of every refusal below, so callers can tell it from a network error. */
export const BLOCKED_ADDRESS = 'ERR_DOCRELAY_BLOCKED_ADDRESS';

export const blockedAddressError = (host: string, address: string) =>
  Object.assign(
    new Error(host === address ? `${address} is a private or reserved address` : `${host} resolves to ${address}, a private or reserved address`),
    { code: BLOCKED_ADDRESS },
  );

/** The refusal of a literal IP host (Node connects to those without calling `lookup`), or null. */
export function refusedLiteral(hostname: string, allowed: AddressPolicy = isPublicAddress): Error | null {
  const host = hostname.replace(/^\[|\]$/g, '');
  return isIP(host) && !allowed(host) ? blockedAddressError(host, host) : null;
}

type LookupCallback = (err: NodeJS.ErrnoException | null, address: string | LookupAddress[], family?: number) => void;
export type Resolver = (hostname: string, options: { family: number; all: true }, cb: (err: NodeJS.ErrnoException | null, addresses: LookupAddress[]) => void) => void;

/**
 * The one rule: a `lookup` for sockets that refuses the whole answer when any address in
 * it is not allowed. (Dropping the bad addresses and connecting to the rest would let a
 * name that mixes a public and a private address reach the private one on a later
 * resolution, or through a client that retries the next address.) The check runs on the
 * connection being made, after resolution, so a name re-pointed inside our network after
 * it was registered (DNS rebinding) is refused too.
 */
export const guardedLookup =
  (allowed: AddressPolicy = isPublicAddress, resolve: Resolver = dnsLookup as unknown as Resolver) =>
  (hostname: string, options: { all?: boolean; family?: number }, callback: LookupCallback): void => {
    resolve(hostname, { family: options.family ?? 0, all: true }, (err, addresses) => {
      if (err) return callback(err, []);
      const bad = addresses.find((a) => !allowed(a.address));
      if (bad) return callback(blockedAddressError(hostname, bad.address), []);
      if (addresses.length === 0) return callback(Object.assign(new Error(`${hostname} has no address`), { code: 'ENOTFOUND' }), []);
      if (options.all) return callback(null, addresses);
      callback(null, addresses[0].address, addresses[0].family);
    });
  };
