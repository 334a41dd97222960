import type { Socket } from 'node:net';

const MAPPED_V4 = '::ffff:';

function unmapped(address: string): string | undefined {
  return address.startsWith(MAPPED_V4) && address.includes('.') ? address.slice(MAPPED_V4.length) : undefined;
}

/**
 * The PROXY protocol v1 header (haproxy.org/download/3.0/doc/proxy-protocol.txt) for a
 * connection from `src:sport` to `dst:dport`: `PROXY TCP4 src dst sport dport\r\n`, TCP6 for
 * IPv6, and `PROXY UNKNOWN\r\n` when the addresses are unknown or of different families.
 * IPv4-mapped IPv6 addresses (a v4 client on a dual-stack listener) are sent as TCP4.
 */
export function proxyHeaderV1(
  src: string | undefined,
  dst: string | undefined,
  sport: number | undefined,
  dport: number | undefined,
): string {
  if (!src || !dst || sport === undefined || dport === undefined) return 'PROXY UNKNOWN\r\n';
  const src4 = src.includes(':') ? unmapped(src) : src;
  const dst4 = dst.includes(':') ? unmapped(dst) : dst;
  if (src4 !== undefined && dst4 !== undefined) return `PROXY TCP4 ${src4} ${dst4} ${sport} ${dport}\r\n`;
  if (src.includes(':') && dst.includes(':')) return `PROXY TCP6 ${src} ${dst} ${sport} ${dport}\r\n`;
  return 'PROXY UNKNOWN\r\n';
}

/** The PROXY v1 header for a client socket accepted by nlb. */
export function proxyHeaderFor(client: Socket): string {
  return proxyHeaderV1(client.remoteAddress, client.localAddress, client.remotePort, client.localPort);
}
