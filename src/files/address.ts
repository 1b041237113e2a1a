import { BlockList, isIP } from 'node:net';

/**
 * Which IP addresses a document download may connect to (SSRF protection).
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
