import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';

/** What one raw connection received, and how it ended. */
export interface RawResult {
  data: Buffer;
  /** latin1, so that every byte is one character. */
  text: string;
  /** The server closed the connection (rather than our deadline ending it). */
  closed: boolean;
  /** Error code seen on the connection (ECONNRESET...), if any. */
  error?: string;
  /** ms from the first byte received to the close; undefined when nothing came or it stayed open. */
  closeAfterDataMs?: number;
  /** ms from connect to the close. */
  ms: number;
}

export interface RawOptions {
  /** Speak TLS (accepting any certificate) and send this SNI name. */
  tls?: boolean;
  servername?: string;
  /** How long to wait for the server to close before giving up (closed: false). */
  waitMs?: number;
  address?: string;
}

/**
 * Opens a TCP (or TLS) connection to arr, writes `payload` at once (bytes exactly as given,
 * nothing added, the connection not half-closed), and collects everything received until the
 * server closes the connection or `waitMs` passes.
 */
export function rawExchange(
  port: number,
  payload: string | Buffer,
  opts: RawOptions = {},
): Promise<RawResult> {
  const { waitMs = 5_000, address = '127.0.0.1' } = opts;
  return new Promise((resolve) => {
    const started = Date.now();
    const chunks: Buffer[] = [];
    let error: string | undefined;
    let firstData: number | undefined;
    let gaveUp = false;
    const socket: Socket = opts.tls
      ? tlsConnect({ port, host: address, servername: opts.servername, rejectUnauthorized: false })
      : netConnect({ port, host: address });
    const timer = setTimeout(() => {
      gaveUp = true;
      socket.destroy();
    }, waitMs);
    socket.on(opts.tls ? 'secureConnect' : 'connect', () =>
      socket.write(typeof payload === 'string' ? Buffer.from(payload, 'latin1') : payload),
    );
    socket.on('data', (d: Buffer) => {
      firstData ??= Date.now();
      chunks.push(d);
    });
    socket.on('error', (err: NodeJS.ErrnoException) => {
      error = err.code ?? err.message;
    });
    socket.on('close', () => {
      clearTimeout(timer);
      const data = Buffer.concat(chunks);
      const now = Date.now();
      resolve({
        data,
        text: data.toString('latin1'),
        closed: !gaveUp,
        error,
        closeAfterDataMs: !gaveUp && firstData !== undefined ? now - firstData : undefined,
        ms: now - started,
      });
    });
  });
}

export interface RawResponse {
  status: number;
  headers: Record<string, string>;
  body: string;
}

/**
 * The HTTP/1.x responses in what a connection received, in order. Bodies are framed by
 * content-length or chunked encoding; without either, the body runs to the end of the data.
 */
export function parseResponses(text: string): RawResponse[] {
  const out: RawResponse[] = [];
  let at = 0;
  while (at < text.length) {
    const headEnd = text.indexOf('\r\n\r\n', at);
    if (headEnd < 0)
      throw new Error(`an incomplete response head at ${at}: ${JSON.stringify(text.slice(at))}`);
    const [statusLine = '', ...lines] = text.slice(at, headEnd).split('\r\n');
    const m = /^HTTP\/1\.[01] (\d{3})/.exec(statusLine);
    if (!m) throw new Error(`not a status line: ${JSON.stringify(statusLine)}`);
    const headers: Record<string, string> = {};
    for (const line of lines) {
      const colon = line.indexOf(':');
      headers[line.slice(0, colon).trim().toLowerCase()] = line.slice(colon + 1).trim();
    }
    at = headEnd + 4;
    let body = '';
    if (headers['content-length'] !== undefined) {
      const n = Number(headers['content-length']);
      body = text.slice(at, at + n);
      at += n;
    } else if (/chunked/i.test(headers['transfer-encoding'] ?? '')) {
      for (;;) {
        const lineEnd = text.indexOf('\r\n', at);
        const size = Number.parseInt(text.slice(at, lineEnd), 16);
        at = lineEnd + 2;
        if (!size) {
          at = text.indexOf('\r\n', at) + 2; // trailers: none expected
          break;
        }
        body += text.slice(at, at + size);
        at += size + 2;
      }
    } else if (Number(m[1]) >= 200 && Number(m[1]) !== 204 && Number(m[1]) !== 304) {
      body = text.slice(at);
      at = text.length;
    }
    out.push({ status: Number(m[1]), headers, body });
  }
  return out;
}

/** A request head (CRLF line ends, blank line included) from a request line and header lines. */
export function head(requestLine: string, ...headerLines: string[]): string {
  return `${[requestLine, ...headerLines].join('\r\n')}\r\n\r\n`;
}

/**
 * A connection that sends `payload` (part of a request head, or nothing) and then stalls, or
 * trickles one more byte of `trickle` every `everyMs`. `closed` resolves (with ms since connect)
 * when the server closes it; `stop()` ends it from our side.
 */
export function stalled(
  port: number,
  payload: string,
  opts: { tls?: boolean; trickle?: string; everyMs?: number } = {},
): { closed: Promise<{ ms: number; text: string }>; stop(): void } {
  const started = Date.now();
  let text = '';
  let ticker: NodeJS.Timeout | undefined;
  const socket: Socket = opts.tls
    ? tlsConnect({ port, host: '127.0.0.1', rejectUnauthorized: false })
    : netConnect({ port, host: '127.0.0.1' });
  socket.on('error', () => {});
  socket.on('data', (d: Buffer) => {
    text += d.toString('latin1');
  });
  socket.on(opts.tls ? 'secureConnect' : 'connect', () => {
    if (payload) socket.write(payload);
    if (opts.trickle) {
      let i = 0;
      ticker = setInterval(() => {
        if (!socket.destroyed) socket.write(opts.trickle![i++ % opts.trickle!.length]!);
      }, opts.everyMs ?? 200);
    }
  });
  const closed = new Promise<{ ms: number; text: string }>((resolve) =>
    socket.once('close', () => {
      clearInterval(ticker);
      resolve({ ms: Date.now() - started, text });
    }),
  );
  return {
    closed,
    stop: () => {
      clearInterval(ticker);
      socket.destroy();
    },
  };
}
