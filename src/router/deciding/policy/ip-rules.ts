import { BlockList } from 'node:net';
import { parseCidr } from '../../../util/cidr.js';

/**
 * An app's `access.allow` and `access.deny`, on Node's own matcher (net.BlockList: IPv4 and
 * IPv6 subnets, and an IPv4-mapped IPv6 address such as ::ffff:10.1.2.3 matches IPv4 rules).
 */
export class IpRules {
  private readonly allow: BlockList | undefined;
  private readonly deny: BlockList | undefined;
  /**
   * Verdicts by address: BlockList.check builds a native SocketAddress per call (about 1 µs),
   * a Map lookup costs a twentieth of that. Cleared when full, so it stays bounded.
   */
  private readonly verdicts = new Map<string, boolean>();

  constructor(allow: readonly string[] | undefined, deny: readonly string[] | undefined) {
    this.allow = allow && allow.length > 0 ? blockList(allow) : allow ? new BlockList() : undefined;
    this.deny = deny && deny.length > 0 ? blockList(deny) : undefined;
  }

  /** Whether a client at `address` may reach the app: not denied, and allowed when there is an allow list. */
  admits(address: string | undefined): boolean {
    if (!address) return this.allow === undefined && this.deny === undefined;
    const known = this.verdicts.get(address);
    if (known !== undefined) return known;
    if (this.verdicts.size >= MAX_VERDICTS) this.verdicts.clear();
    const verdict = this.check(address);
    this.verdicts.set(address, verdict);
    return verdict;
  }

  private check(address: string): boolean {
    const family = address.includes(':') ? 'ipv6' : 'ipv4';
    if (this.deny?.check(address, family)) return false;
    return this.allow === undefined || this.allow.check(address, family);
  }
}

/** The most addresses whose verdict is remembered. */
const MAX_VERDICTS = 4096;

function blockList(cidrs: readonly string[]): BlockList {
  const list = new BlockList();
  for (const text of cidrs) {
    const c = parseCidr(text);
    if (c) list.addSubnet(c.network, c.prefix, c.family);
  }
  return list;
}
