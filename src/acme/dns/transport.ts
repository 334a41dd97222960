import { randomInt } from 'node:crypto';
import { createSocket } from 'node:dgram';
import { lookup } from 'node:dns/promises';
import { isIP, Socket } from 'node:net';
import * as dnsPacket from 'dns-packet';

/**
 * DNS messages to one server: over UDP, and again over TCP when the answer comes back truncated
 * (RFC 7766). The messages themselves are dns-packet's (see docs/acme.md for the choice).
 */

export interface DnsServer {
  host: string;
  port: number;
}

/** A decoded message with the header fields dns-packet's types leave out. */
export type DnsMessage = dnsPacket.DecodedPacket & { rcode: string; opcode: string };

const UDP_TRIES = 2;
/** The most bytes read back over TCP: a DNS message is at most 64 KiB. */
const MAX_TCP_MESSAGE = 65_535;

export function formatServer(s: DnsServer): string {
  return isIP(s.host) === 6 ? `[${s.host}]:${s.port}` : `${s.host}:${s.port}`;
}

/** A fresh message id (the answer must carry the same). */
export function messageId(): number {
  return randomInt(0, 0x10000);
}

/**
 * Sends `message` (wire bytes, id included) to `server` and resolves the answer's bytes: over
 * UDP (tried twice, `timeoutMs` each), then over TCP when the answer is truncated.
 */
export async function exchange(server: DnsServer, message: Buffer, timeoutMs: number): Promise<Buffer> {
  const address = isIP(server.host) ? server.host : (await lookup(server.host)).address;
  const to = { host: address, port: server.port };
  let lastError: Error | undefined;
  for (let i = 0; i < UDP_TRIES; i++) {
    try {
      const answer = await overUdp(to, message, timeoutMs);
      // TC: the answer did not fit in a datagram.
      if ((answer.readUInt16BE(2) & dnsPacket.TRUNCATED_RESPONSE) === 0) return answer;
      return await overTcp(to, message, timeoutMs);
    } catch (err) {
      lastError = err as Error;
    }
  }
  throw new Error(`no answer from the DNS server ${formatServer(server)} (${lastError?.message})`);
}

/** A query for `name`/`type` to `server`; `recursive` asks a resolver to recurse (RD). */
export async function query(
  server: DnsServer,
  name: string,
  type: dnsPacket.RecordType,
  { recursive, timeoutMs }: { recursive: boolean; timeoutMs: number },
): Promise<DnsMessage> {
  const message = dnsPacket.encode({
    type: 'query',
    id: messageId(),
    flags: recursive ? dnsPacket.RECURSION_DESIRED : 0,
    questions: [{ type, name: name.replace(/\.$/, ''), class: 'IN' }],
  });
  return decode(await exchange(server, message, timeoutMs));
}

export function decode(answer: Buffer): DnsMessage {
  try {
    return dnsPacket.decode(answer) as DnsMessage;
  } catch (err) {
    throw new Error(`a malformed DNS answer (${(err as Error).message})`);
  }
}

function overUdp(to: DnsServer, message: Buffer, timeoutMs: number): Promise<Buffer> {
  const id = message.readUInt16BE(0);
  const socket = createSocket(isIP(to.host) === 6 ? 'udp6' : 'udp4');
  return new Promise<Buffer>((resolve, reject) => {
    const timer = setTimeout(() => done(new Error(`no answer within ${timeoutMs} ms`)), timeoutMs);
    let settled = false;
    const done = (err: Error | undefined, answer?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.close();
      if (err) reject(err);
      else resolve(answer!);
    };
    socket.on('error', (err) => done(err));
    socket.on('message', (answer, from) => {
      // Anything but the answer to this message from this server is ignored.
      if (from.address !== to.host || from.port !== to.port) return;
      if (answer.length < 12 || answer.readUInt16BE(0) !== id) return;
      done(undefined, answer);
    });
    socket.send(message, to.port, to.host, (err) => {
      if (err) done(err);
    });
  });
}

function overTcp(to: DnsServer, message: Buffer, timeoutMs: number): Promise<Buffer> {
  return new Promise<Buffer>((resolve, reject) => {
    const socket = new Socket();
    let got = Buffer.alloc(0);
    const timer = setTimeout(() => done(new Error(`no answer over TCP within ${timeoutMs} ms`)), timeoutMs);
    let settled = false;
    const done = (err: Error | undefined, answer?: Buffer) => {
      if (settled) return;
      settled = true;
      clearTimeout(timer);
      socket.destroy();
      if (err) reject(err);
      else resolve(answer!);
    };
    socket.on('error', (err) => done(err));
    socket.on('close', () => done(new Error('the server closed the TCP connection before answering')));
    socket.on('data', (chunk: Buffer) => {
      got = Buffer.concat([got, chunk]);
      if (got.length > MAX_TCP_MESSAGE + 2) return done(new Error('an oversized DNS answer'));
      if (got.length >= 2 && got.length >= 2 + got.readUInt16BE(0))
        done(undefined, got.subarray(2, 2 + got.readUInt16BE(0)));
    });
    socket.connect(to.port, to.host, () => {
      const length = Buffer.alloc(2);
      length.writeUInt16BE(message.length);
      socket.write(Buffer.concat([length, message]));
    });
  });
}
