import type { DnsServer } from './transport.js';

/**
 * Where the TXT records of DNS-01 challenges are put: `--acme-dns exec:PATH` (a hook, as lego's
 * exec provider and acme.sh's hooks) or `rfc2136:HOST:PORT` (dynamic updates signed with TSIG).
 */
export interface DnsProvider {
  /** What the log calls it. */
  readonly description: string;
  /** Puts the TXT record `value` at `fqdn` (`_acme-challenge.example.com.`, trailing dot). */
  present(fqdn: string, value: string): Promise<void>;
  /** Removes that one record again (other values at the same name stay). */
  cleanup(fqdn: string, value: string): Promise<void>;
  /** Where the zone of a name and its authoritative servers are looked up (the propagation check). */
  readonly resolvers: DnsServer[];
}

/** `--acme-dns`, parsed. */
export type DnsProviderSpec = { kind: 'exec'; path: string } | { kind: 'rfc2136'; server: DnsServer };

/**
 * `--acme-dns` as the CLI gives it: `exec:PATH` or `rfc2136:HOST:PORT` (`[IPv6]:PORT`). Throws
 * with what is expected; the PATH's file and the TSIG key are checked by whoever builds it.
 */
export function parseDnsProvider(text: string): DnsProviderSpec {
  const usage = `must be exec:PATH or rfc2136:HOST:PORT (got "${text}")`;
  if (text.startsWith('exec:')) {
    const path = text.slice(5);
    if (path === '') throw new Error(usage);
    return { kind: 'exec', path };
  }
  if (text.startsWith('rfc2136:')) {
    const m = /^(?:\[([0-9a-fA-F:.]+)\]|([^:[\]]+)):(\d{1,5})$/.exec(text.slice(8));
    const port = Number(m?.[3]);
    if (!m || port < 1 || port > 65535) throw new Error(usage);
    return { kind: 'rfc2136', server: { host: m[1] ?? m[2]!, port } };
  }
  throw new Error(usage);
}
