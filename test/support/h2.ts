import {
  type ClientHttp2Session,
  type ClientHttp2Stream,
  connect,
  constants,
  type IncomingHttpHeaders,
  type OutgoingHttpHeaders,
} from 'node:http2';
import { type TLSSocket, connect as tlsConnect } from 'node:tls';
import { until } from './poll.js';

/** An HTTP/2 connection to arr's TLS port at 127.0.0.1, opened with this SNI name. */
export function h2Connect(port: number, servername: string): Promise<ClientHttp2Session> {
  return new Promise((resolve, reject) => {
    const session = connect(`https://127.0.0.1:${port}`, {
      servername,
      rejectUnauthorized: false,
      ALPNProtocols: ['h2'],
    });
    session.once('connect', () => {
      session.off('error', reject);
      session.on('error', () => {});
      resolve(session);
    });
    session.once('error', reject);
  });
}

export interface H2Reply {
  status: number;
  headers: IncomingHttpHeaders;
  trailers: IncomingHttpHeaders | undefined;
  body: Buffer;
  text: string;
}

/** One request on the session for `authority`, read whole. */
export function h2Request(
  session: ClientHttp2Session,
  authority: string,
  path: string,
  opts: { method?: string; headers?: OutgoingHttpHeaders; body?: Buffer | string } = {},
): Promise<H2Reply> {
  const stream = session.request(
    { ':method': opts.method ?? 'GET', ':path': path, ':authority': authority, ...opts.headers },
    { endStream: opts.body === undefined },
  );
  if (opts.body !== undefined) stream.end(opts.body);
  return readH2(stream);
}

export function readH2(stream: ClientHttp2Stream): Promise<H2Reply> {
  return new Promise((resolve, reject) => {
    let headers: IncomingHttpHeaders = {};
    let trailers: IncomingHttpHeaders | undefined;
    const chunks: Buffer[] = [];
    stream.on('response', (h) => {
      headers = h;
    });
    stream.on('trailers', (t) => {
      trailers = t;
    });
    stream.on('data', (c: Buffer) => chunks.push(c));
    stream.on('error', reject);
    stream.on('end', () => {
      const body = Buffer.concat(chunks);
      resolve({
        status: Number(headers[':status']),
        headers,
        trailers,
        body,
        text: body.toString('utf8'),
      });
    });
  });
}

export function closeSession(session: ClientHttp2Session | undefined): Promise<void> {
  return new Promise((resolve) => {
    if (!session || session.destroyed) return resolve();
    session.close(() => resolve());
    setTimeout(() => session.destroy(), 2_000).unref();
  });
}

/** The ALPN protocol the TLS port chooses when a client offers h2 and http/1.1. */
export function negotiated(port: number, servername: string): Promise<string | false> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(
      { host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['h2', 'http/1.1'] },
      () => {
        resolve(s.alpnProtocol ?? false);
        s.destroy();
      },
    );
    s.on('error', reject);
  });
}

// --- A hand-made HTTP/2 frame writer, for clients that misbehave on purpose (RFC 9113 §4.1) ---

export const FRAME = {
  DATA: 0x0,
  HEADERS: 0x1,
  RST_STREAM: 0x3,
  SETTINGS: 0x4,
  PING: 0x6,
  GOAWAY: 0x7,
  WINDOW_UPDATE: 0x8,
  CONTINUATION: 0x9,
} as const;

export const FLAG = { END_STREAM: 0x1, ACK: 0x1, END_HEADERS: 0x4 } as const;

export const PREFACE = Buffer.from('PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n', 'latin1');

/** One frame: its 9-byte header and payload. */
export function frame(
  type: number,
  flags: number,
  streamId: number,
  payload: Buffer = Buffer.alloc(0),
): Buffer {
  const head = Buffer.alloc(9);
  head.writeUIntBE(payload.length, 0, 3);
  head[3] = type;
  head[4] = flags;
  head.writeUInt32BE(streamId & 0x7fffffff, 5);
  return Buffer.concat([head, payload]);
}

/** A SETTINGS frame with these (id, value) pairs. */
export function settings(pairs: [number, number][] = []): Buffer {
  const payload = Buffer.alloc(6 * pairs.length);
  pairs.forEach(([id, value], i) => {
    payload.writeUInt16BE(id, 6 * i);
    payload.writeUInt32BE(value, 6 * i + 2);
  });
  return frame(FRAME.SETTINGS, 0, 0, payload);
}

/** An HPACK integer with an n-bit prefix (RFC 7541 §5.1), first byte's high bits given. */
function hpackInt(value: number, prefixBits: number, high: number): number[] {
  const max = (1 << prefixBits) - 1;
  if (value < max) return [high | value];
  const out = [high | max];
  let v = value - max;
  while (v >= 128) {
    out.push((v % 128) + 128);
    v = Math.floor(v / 128);
  }
  out.push(v);
  return out;
}

/** A header block of literal fields without indexing (no Huffman): what any decoder reads. */
export function headerBlock(fields: [string, string][]): Buffer {
  const bytes: number[] = [];
  for (const [name, value] of fields) {
    bytes.push(0x00, ...hpackInt(name.length, 7, 0), ...Buffer.from(name, 'latin1'));
    bytes.push(...hpackInt(value.length, 7, 0), ...Buffer.from(value, 'latin1'));
  }
  return Buffer.from(bytes);
}

/** The fields of a GET for `authority` `path`. */
export function getFields(authority: string, path = '/'): [string, string][] {
  return [
    [':method', 'GET'],
    [':scheme', 'https'],
    [':authority', authority],
    [':path', path],
  ];
}

/** A raw TLS connection that negotiated h2, with the preface and an empty SETTINGS sent. */
export function rawH2(
  port: number,
  servername: string,
  initialSettings: [number, number][] = [],
): Promise<TLSSocket> {
  return new Promise((resolve, reject) => {
    const s = tlsConnect(
      { host: '127.0.0.1', port, servername, rejectUnauthorized: false, ALPNProtocols: ['h2'] },
      () => {
        if (s.alpnProtocol !== 'h2') {
          s.destroy();
          reject(new Error(`ALPN chose ${String(s.alpnProtocol)}, not h2`));
          return;
        }
        s.write(Buffer.concat([PREFACE, settings(initialSettings)]));
        resolve(s);
      },
    );
    s.once('error', reject);
  });
}

export const SETTING = {
  HEADER_TABLE_SIZE: 0x1,
  ENABLE_PUSH: 0x2,
  MAX_CONCURRENT_STREAMS: 0x3,
  INITIAL_WINDOW_SIZE: 0x4,
} as const;

export { constants };

/**
 * Opens a WebSocket over HTTP/2 (RFC 8441): an extended CONNECT for `authority` and `path`,
 * once the server has announced SETTINGS_ENABLE_CONNECT_PROTOCOL. The stream stays open.
 */
export async function wsConnect(
  session: ClientHttp2Session,
  authority: string,
  path: string,
): Promise<ClientHttp2Stream> {
  await until('SETTINGS_ENABLE_CONNECT_PROTOCOL', () => session.remoteSettings.enableConnectProtocol);
  const headers = {
    ':method': 'CONNECT',
    ':protocol': 'websocket',
    ':scheme': 'https',
    ':path': path,
    ':authority': authority,
    'sec-websocket-version': '13',
  };
  return session.request(headers, { endStream: false });
}

// --- WebSocket frames over an extended CONNECT stream (RFC 6455 §5.2), as a client sends them ---

/** A masked text frame (payload under 126 bytes). */
export function wsText(text: string): Buffer {
  const payload = Buffer.from(text, 'utf8');
  if (payload.length >= 126) throw new Error('wsText: short texts only');
  const mask = Buffer.from([1, 2, 3, 4]);
  const masked = Buffer.from(payload.map((b, i) => b ^ mask[i % 4]!));
  return Buffer.concat([Buffer.from([0x81, 0x80 | payload.length]), mask, masked]);
}

/** The text messages in what a server sent (unmasked frames, payloads under 64 KB). */
export function wsTexts(data: Buffer): string[] {
  const out: string[] = [];
  let i = 0;
  while (i + 2 <= data.length) {
    const opcode = data[i]! & 0x0f;
    let len = data[i + 1]! & 0x7f;
    let at = i + 2;
    if (len === 126) {
      if (at + 2 > data.length) break;
      len = data.readUInt16BE(at);
      at += 2;
    }
    if (at + len > data.length) break;
    if (opcode === 1) out.push(data.toString('utf8', at, at + len));
    i = at + len;
  }
  return out;
}
