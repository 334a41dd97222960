import type { Server } from 'node:http';
import type { Socket } from 'node:net';
import type { H2Front } from './h2.js';

/**
 * HTTP/2 with prior knowledge on the plain port (h2c, RFC 9113 §3.3): a connection whose first
 * bytes are the connection preface `PRI * HTTP/2.0` is handed to the HTTP/2 side.
 *
 * node:http's parser (llhttp) recognises the preface itself and stops with
 * HPE_PAUSED_H2_UPGRADE, reported as a 'clientError' with the bytes it read (`rawPacket`). The
 * connection is taken back from node:http there (its parser lets go of the socket, as node:http
 * does for an upgrade) and given to the HTTP/2 server with those bytes put back. HTTP/1.1
 * connections therefore pay nothing for it; peeking at the first bytes of every connection (as
 * client-hello.ts does for TLS-ALPN-01) would cost each a listener, a copy and an unshift.
 *
 * A 'clientError' listener replaces node:http's own answer to every other client error: that
 * answer is written here as node:http 20 writes it (400, 408, 413, 431 with `Connection: close`).
 */
export function acceptPriorKnowledge(http: Server, h2: H2Front, accepted: (socket: Socket) => void): void {
  http.on('clientError', (err: NodeJS.ErrnoException & { rawPacket?: Buffer }, socket: Socket) => {
    if (err.code === 'HPE_PAUSED_H2_UPGRADE' && err.rawPacket && release(socket)) {
      socket.pause();
      socket.unshift(err.rawPacket);
      accepted(socket);
      h2.accept(socket);
      return;
    }
    answerClientError(err, socket);
  });
}

/** node:http's parser, as much of it as is used to let go of a socket. */
interface Parser {
  unconsume?: () => void;
  remove?: () => void;
}

/** Node's events on a socket node:http serves, whose listeners are its own (data, pauses...). */
const HTTP_EVENTS = ['data', 'end', 'drain', 'error', 'timeout', 'pause', 'resume'] as const;

/**
 * Takes the socket from node:http: its parser stops reading the socket's handle (so that
 * nghttp2 can) and leaves the server's list of connections (whose timeouts and idle closes are
 * HTTP/1.1's), and node:http's listeners go. False when this Node has no such parser: the
 * connection is then refused as any bad request.
 */
function release(socket: Socket): boolean {
  const s = socket as Socket & { parser?: Parser | null };
  const parser = s.parser;
  if (!parser || typeof parser.unconsume !== 'function' || typeof parser.remove !== 'function') return false;
  parser.unconsume();
  parser.remove();
  for (const event of HTTP_EVENTS) socket.removeAllListeners(event);
  socket.setTimeout(0);
  return true;
}

const ANSWERS: Record<string, string> = {
  HPE_HEADER_OVERFLOW: '431 Request Header Fields Too Large',
  HPE_CHUNK_EXTENSIONS_OVERFLOW: '413 Payload Too Large',
  ERR_HTTP_REQUEST_TIMEOUT: '408 Request Timeout',
};

/** What node:http answers a client error with when the server has no 'clientError' listener. */
function answerClientError(err: NodeJS.ErrnoException, socket: Socket): void {
  const message = (socket as Socket & { _httpMessage?: { headersSent?: boolean } })._httpMessage;
  if (socket.writable && !message?.headersSent) {
    const status = ANSWERS[err.code ?? ''] ?? '400 Bad Request';
    socket.write(`HTTP/1.1 ${status}\r\nConnection: close\r\n\r\n`);
  }
  socket.destroy(err);
}
