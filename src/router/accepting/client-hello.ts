import type { Server, Socket } from 'node:net';

/** A span of a ClientHello record: [start, end). */
interface Span {
  start: number;
  end: number;
}

/**
 * Where the extensions of a TLS ClientHello lie in its first record (RFC 8446 §4.1.2), or
 * undefined when the bytes are not a complete ClientHello record; a hello without extensions
 * gives an empty span.
 */
function extensionList(data: Buffer): Span | undefined {
  // Record: type 22 (handshake), version, length; handshake: type 1 (ClientHello), length.
  if (data.length < 9 || data[0] !== 22 || data[5] !== 1) return undefined;
  const end = Math.min(data.length, 5 + data.readUInt16BE(3));
  let p = 9 + 2 + 32; // client version, random
  // Session id, cipher suites, compression methods: each a length (1 or 2 bytes), then that many.
  for (const lenBytes of [1, 2, 1] as const) {
    if (p + lenBytes > end) return undefined;
    p += lenBytes + (lenBytes === 1 ? data[p]! : data.readUInt16BE(p));
    if (p > end) return undefined;
  }
  if (p + 2 > end) return { start: p, end: p };
  return { start: p + 2, end: Math.min(end, p + 2 + data.readUInt16BE(p)) };
}

/** The body of the first extension of `type` in `list`, or undefined when there is none. */
function extensionOf(data: Buffer, list: Span, type: number): Span | undefined {
  let p = list.start;
  while (p + 4 <= list.end) {
    const t = data.readUInt16BE(p);
    const len = data.readUInt16BE(p + 2);
    p += 4;
    if (t === type) return { start: p, end: Math.min(p + len, list.end) };
    p += len;
  }
  return undefined;
}

/**
 * The ALPN protocols a TLS ClientHello offers, read from its first record (RFC 7301), or
 * undefined when the bytes are not a complete ClientHello record. Node's TLS server tells the
 * SNI name before it has read ALPN, so a certificate that depends on ALPN (the TLS-ALPN-01
 * challenge, RFC 8737) can only be chosen by looking at the hello first.
 */
export function offeredProtocols(data: Buffer): string[] | undefined {
  const list = extensionList(data);
  if (!list) return undefined;
  const alpn = extensionOf(data, list, 16);
  if (!alpn) return [];
  // A list length (2), then names each with a length (1).
  const out: string[] = [];
  let q = alpn.start + 2;
  while (q < alpn.end) {
    const n = data[q]!;
    out.push(data.toString('latin1', q + 1, q + 1 + n));
    q += 1 + n;
  }
  return out;
}

/** The SNI host name of a ClientHello's first record, lower case, or undefined. */
export function serverName(data: Buffer): string | undefined {
  const list = extensionList(data);
  const sni = list && extensionOf(data, list, 0);
  // server_name: list length (2), name type (1, 0 = host_name), name length (2), name.
  if (!sni || sni.end - sni.start < 5 || data[sni.start + 2] !== 0) return undefined;
  const n = data.readUInt16BE(sni.start + 3);
  return data.toString('latin1', sni.start + 5, Math.min(sni.start + 5 + n, sni.end)).toLowerCase();
}

/** The largest first record looked at: a ClientHello bigger than that is not ACME's. */
const MAX_HELLO = 16 * 1024 + 5;

/**
 * Makes `server` (a TLS server, not yet listening) look at the ClientHello of each connection:
 * one offering ALPN `acme-tls/1` only goes to `onAcme` (which answers it with its own TLS
 * socket); every other connection goes to the server's own handling as if nothing happened,
 * with its bytes put back. Installed only when TLS-ALPN-01 is in use.
 */
export function divertAcmeTls(
  server: Server,
  timeoutMs: number,
  onAcme: (socket: Socket, servername: string) => void,
): void {
  const own = server.listeners('connection') as ((this: Server, socket: Socket) => void)[];
  server.removeAllListeners('connection');
  const handOver = (socket: Socket) => {
    for (const listener of own) listener.call(server, socket);
  };
  server.on('connection', (socket: Socket) => {
    let buffered: Buffer | undefined;
    // A client that sends no hello is closed like one whose handshake stalls.
    const timer = setTimeout(() => socket.destroy(), timeoutMs);
    const onError = () => socket.destroy();
    const onClose = () => clearTimeout(timer);
    const done = (data: Buffer) => {
      clearTimeout(timer);
      socket.off('data', onData);
      socket.off('error', onError);
      socket.off('close', onClose);
      socket.pause();
      socket.unshift(data);
      const alpn = offeredProtocols(data);
      const name = serverName(data);
      if (alpn?.length === 1 && alpn[0] === 'acme-tls/1' && name) onAcme(socket, name);
      else handOver(socket);
    };
    const onData = (chunk: Buffer) => {
      const data = buffered ? Buffer.concat([buffered, chunk]) : chunk;
      const want = data.length >= 5 ? 5 + data.readUInt16BE(3) : Number.POSITIVE_INFINITY;
      if (data.length >= want || data.length >= MAX_HELLO || data[0] !== 22) done(data);
      else buffered = data;
    };
    socket.on('data', onData);
    socket.on('error', onError);
    socket.on('close', onClose);
  });
}
