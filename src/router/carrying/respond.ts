import { STATUS_CODES } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Duplex } from 'node:stream';
import { type DownstreamResponse, isH2Response } from './downstream.js';
import { closeAfterAnswer } from './h2-messages.js';

/**
 * Short plain-text answers arr gives itself. Bodies say what happened in words a client can
 * act on and never carry internals (stack traces, driver errors, file paths).
 */
export function sendError(
  res: DownstreamResponse,
  status: number,
  message: string,
  headers?: Record<string, string>,
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${status} ${STATUS_CODES[status] ?? ''}: ${message}\n`;
  const head = {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
  };
  // On HTTP/2 there is no Connection field: Node would refuse the whole head.
  if (isH2Response(res)) res.writeHead(status, { ...head, ...withoutConnection(headers) });
  else res.writeHead(status, { ...head, ...headers });
  res.end(body);
}

function withoutConnection(headers: Record<string, string> | undefined): Record<string, string> | undefined {
  if (!headers?.connection) return headers;
  const { connection: _, ...rest } = headers;
  return rest;
}

/** The same answer on a raw socket, for a WebSocket upgrade that is refused. */
export function rejectUpgrade(
  socket: Duplex,
  status: number,
  message: string,
  headers?: Record<string, string>,
): void {
  if (!socket.writable || socket.destroyed) {
    socket.destroy();
    return;
  }
  const body = `${status} ${STATUS_CODES[status] ?? ''}: ${message}\n`;
  if ('respond' in socket) {
    // A refused HTTP/2 extended CONNECT (h2-websocket.ts) is answered on its stream.
    const stream = socket as ServerHttp2Stream;
    if (stream.headersSent) {
      stream.destroy();
      return;
    }
    try {
      // The client may never end its side of the stream: it is closed once the answer is sent.
      closeAfterAnswer(stream, {
        ':status': status,
        'content-type': 'text/plain; charset=utf-8',
        'content-length': Buffer.byteLength(body),
        'cache-control': 'no-store',
        ...withoutConnection(headers),
      });
      stream.end(body);
    } catch {
      stream.destroy(); // its session is going: nothing can be answered on it
    }
    return;
  }
  const extra = Object.entries(headers ?? {})
    .map(([k, v]) => `${k}: ${v}\r\n`)
    .join('');
  socket.end(
    `HTTP/1.1 ${status} ${STATUS_CODES[status] ?? ''}\r\n` +
      'content-type: text/plain; charset=utf-8\r\n' +
      `content-length: ${Buffer.byteLength(body)}\r\n` +
      `${extra}connection: close\r\n\r\n${body}`,
  );
}
