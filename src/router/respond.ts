import { type ServerResponse, STATUS_CODES } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * Short plain-text answers arr gives itself. Bodies say what happened in words a client can
 * act on and never carry internals (stack traces, driver errors, file paths).
 */
export function sendError(
  res: ServerResponse,
  status: number,
  message: string,
  headers?: Record<string, string>,
): void {
  if (res.headersSent || res.destroyed) {
    res.destroy();
    return;
  }
  const body = `${status} ${STATUS_CODES[status] ?? ''}: ${message}\n`;
  res.writeHead(status, {
    'content-type': 'text/plain; charset=utf-8',
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(body);
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
