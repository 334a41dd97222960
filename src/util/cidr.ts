import { isIPv4, isIPv6 } from 'node:net';

/** A network as `net.BlockList.addSubnet` takes it. */
export interface Cidr {
  network: string;
  prefix: number;
  family: 'ipv4' | 'ipv6';
}

/**
 * `10.0.0.0/8`, `2001:db8::/32`, or a bare address (one host: /32 or /128); undefined when it
 * is none of these. Host bits under the prefix are allowed, as nginx and Caddy take them.
 */
export function parseCidr(text: string): Cidr | undefined {
  const slash = text.indexOf('/');
  const network = slash === -1 ? text : text.slice(0, slash);
  const family = isIPv4(network) ? 'ipv4' : isIPv6(network) ? 'ipv6' : undefined;
  if (family === undefined) return undefined;
  const max = family === 'ipv4' ? 32 : 128;
  if (slash === -1) return { network, prefix: max, family };
  const bits = text.slice(slash + 1);
  if (!/^\d{1,3}$/.test(bits) || Number(bits) > max) return undefined;
  return { network, prefix: Number(bits), family };
}
