import * as dnsPacket from 'dns-packet';
import { zoneOf } from './propagation.js';
import type { DnsProvider } from './provider.js';
import { type DnsServer, decode, exchange, formatServer, messageId } from './transport.js';
import { checkAnswer, sign, type TsigKey, wireName } from './tsig.js';

/** OPCODE 5, UPDATE (RFC 2136 §2.2), in the header's flags. */
const UPDATE = 5 << 11;
/** Class NONE (254): "delete this one record" in an update section (RFC 2136 §2.5.4). */
const CLASS_NONE = 254;
/** The TTL of a challenge record: short, it lives for one validation. */
const TXT_TTL = 60;

/**
 * DNS-01 through dynamic updates (RFC 2136) to an authoritative server (BIND, Knot, PowerDNS),
 * signed with a TSIG key. The zone is the one the server names in its SOA for the record's name.
 */
export class Rfc2136Provider implements DnsProvider {
  readonly description: string;
  readonly resolvers: DnsServer[];

  constructor(
    private readonly server: DnsServer,
    private readonly key: TsigKey,
    private readonly timeoutMs = 5_000,
  ) {
    this.description = `rfc2136 ${formatServer(server)} (TSIG key ${key.name})`;
    this.resolvers = [server];
  }

  present(fqdn: string, value: string): Promise<void> {
    return this.update(fqdn, value, 'add');
  }

  cleanup(fqdn: string, value: string): Promise<void> {
    return this.update(fqdn, value, 'delete');
  }

  private async update(fqdn: string, value: string, op: 'add' | 'delete'): Promise<void> {
    const zone = await zoneOf(fqdn, this.resolvers);
    const name = fqdn.replace(/\.$/, '');
    const message = dnsPacket.encode({
      type: 'query',
      id: messageId(),
      flags: UPDATE,
      questions: [{ type: 'SOA', name: zone, class: 'IN' }], // the zone section
      authorities: [{ type: 'TXT', name, class: 'IN', ttl: op === 'add' ? TXT_TTL : 0, data: [value] }],
    });
    if (op === 'delete') {
      // dns-packet has no class NONE: the record's class field is written over. Its names are
      // not compressed, so the field sits after the header, the zone section and the name.
      message.writeUInt16BE(CLASS_NONE, 12 + wireName(zone).length + 4 + wireName(name).length + 2);
    }
    const { signed, mac } = sign(message, this.key);
    const raw = await exchange(this.server, signed, this.timeoutMs);
    const answer = decode(raw);
    const verb = op === 'add' ? 'add' : 'removal';
    if (answer.rcode !== 'NOERROR') {
      const tsig = checkAnswer(raw, this.key, mac);
      throw new Error(
        `the DNS server ${formatServer(this.server)} refused the ${verb} of the TXT record ${fqdn} in zone ${zone}: ${answer.rcode}${tsig && tsig !== 'the answer is not signed' ? ` (${tsig})` : ''}`,
      );
    }
    const problem = checkAnswer(raw, this.key, mac);
    if (problem)
      throw new Error(
        `the answer of the DNS server ${formatServer(this.server)} to the ${verb} of ${fqdn} cannot be trusted: ${problem}`,
      );
  }
}
