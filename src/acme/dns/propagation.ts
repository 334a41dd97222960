import { getServers } from 'node:dns';
import { isIP } from 'node:net';
import type { Answer } from 'dns-packet';
import { type DnsServer, formatServer, query } from './transport.js';

/**
 * Before the CA is asked to validate a DNS-01 challenge, its TXT record must be served by every
 * authoritative server of its zone (a secondary may lag its primary), as certmagic's and lego's
 * propagation checks do: the zone and its NS records are found through `resolvers`, then each
 * name server is asked directly (port 53, no recursion) until all of them have the value, or the
 * wait is over.
 */

const QUERY_TIMEOUT_MS = 2_000;
const DNS_PORT = 53;

/** The system's resolvers (/etc/resolv.conf), as servers. */
export function dnsServers(): DnsServer[] {
  return getServers().map((s) => {
    const m = /^\[(.+)\]:(\d+)$/.exec(s) ?? (isIP(s) ? null : /^(.+):(\d+)$/.exec(s));
    return m ? { host: m[1]!, port: Number(m[2]) } : { host: s, port: DNS_PORT };
  });
}

/** A record's data as dns-packet decodes it (a name, an address, a TXT's strings). */
function dataOf(r: Answer): unknown {
  return (r as { data?: unknown }).data;
}

async function ask(resolvers: DnsServer[], name: string, type: 'SOA' | 'NS' | 'A' | 'AAAA') {
  let lastError: Error | undefined;
  for (const r of resolvers) {
    try {
      return await query(r, name, type, { recursive: true, timeoutMs: QUERY_TIMEOUT_MS });
    } catch (err) {
      lastError = err as Error;
    }
  }
  throw lastError ?? new Error('no DNS resolver is configured');
}

/** The zone `fqdn` is in: the owner of the SOA record in the answer for it. */
export async function zoneOf(fqdn: string, resolvers: DnsServer[]): Promise<string> {
  const name = fqdn.replace(/\.$/, '').toLowerCase();
  const answer = await ask(resolvers, name, 'SOA');
  const soa = [...(answer.answers ?? []), ...(answer.authorities ?? [])].find((r) => r.type === 'SOA');
  const zone = soa?.name.toLowerCase();
  if (!zone || !(name === zone || name.endsWith(`.${zone}`)))
    throw new Error(
      `cannot find the zone of ${fqdn} (the resolver answered ${answer.rcode} without its SOA)`,
    );
  return zone;
}

/** The addresses of the zone's name servers: from the glue of the NS answer, else looked up. */
export async function authoritativeServers(zone: string, resolvers: DnsServer[]): Promise<DnsServer[]> {
  const answer = await ask(resolvers, zone, 'NS');
  const names = (answer.answers ?? [])
    .filter((r) => r.type === 'NS')
    .map((r) => String(dataOf(r)).toLowerCase());
  if (names.length === 0) throw new Error(`the zone ${zone} has no NS records (${answer.rcode})`);
  const glue = (answer.additionals ?? []) as Answer[];
  const out: DnsServer[] = [];
  for (const ns of names) {
    let found = glue.filter((r) => (r.type === 'A' || r.type === 'AAAA') && r.name.toLowerCase() === ns);
    if (found.length === 0) {
      const [a, aaaa] = await Promise.all([ask(resolvers, ns, 'A'), ask(resolvers, ns, 'AAAA')]);
      found = [...(a.answers ?? []), ...(aaaa.answers ?? [])].filter(
        (r) => r.type === 'A' || r.type === 'AAAA',
      );
    }
    for (const r of found) out.push({ host: String(dataOf(r)), port: DNS_PORT });
  }
  if (out.length === 0) throw new Error(`no address for the name servers of ${zone} (${names.join(', ')})`);
  return out;
}

/** Whether `server` answers the TXT record `value` at `fqdn` itself. */
async function serves(server: DnsServer, fqdn: string, value: string): Promise<boolean> {
  const answer = await query(server, fqdn, 'TXT', { recursive: false, timeoutMs: QUERY_TIMEOUT_MS });
  return (answer.answers ?? []).some(
    (r) => r.type === 'TXT' && [dataOf(r)].flat().map(String).join('') === value,
  );
}

/**
 * Resolves once every authoritative server of the zone of `fqdn` serves the TXT `value`;
 * rejects after `timeoutMs` naming the servers that do not.
 */
export async function waitForTxt(
  fqdn: string,
  value: string,
  resolvers: DnsServer[],
  { timeoutMs, intervalMs = 2_000 }: { timeoutMs: number; intervalMs?: number },
): Promise<void> {
  const deadline = Date.now() + timeoutMs;
  const servers = await authoritativeServers(await zoneOf(fqdn, resolvers), resolvers);
  let missing = servers;
  for (;;) {
    const seen = await Promise.all(missing.map((s) => serves(s, fqdn, value).catch(() => false)));
    missing = missing.filter((_, i) => !seen[i]);
    if (missing.length === 0) return;
    if (Date.now() + intervalMs > deadline)
      throw new Error(
        `the TXT record ${fqdn} is not served by every authoritative server of its zone after ${Math.round(timeoutMs / 1000)} s (not yet by ${missing.map(formatServer).join(', ')})`,
      );
    await new Promise((r) => setTimeout(r, intervalMs));
  }
}
