import type { Socket } from 'node:net';

/**
 * How long an HTTP/1.1 connection closed after an answer that came before the whole request
 * body (http-engine.ts) keeps being read (and what arrives discarded): closing with unread data
 * would send a reset, and a client can lose the answer to it. Lingering, as nginx and Go do,
 * lets it read the answer and stop sending.
 */
const LINGER_MS = 2_000;

/**
 * Node's server ends a connection that is not kept with destroySoon: a close with unread data,
 * which the kernel turns into a reset. For this one connection the close lingers instead: the
 * answer is followed by a FIN, what the client still sends is read (and discarded by the
 * request it belongs to), and the socket goes when the client closes its side or after LINGER_MS.
 */
export function lingerOnClose(socket: Socket): void {
  socket.destroySoon = function lingeringClose(this: Socket) {
    if (this.writable) this.end();
    this.resume();
    const timer = setTimeout(() => this.destroy(), LINGER_MS);
    timer.unref();
    this.once('end', () => this.destroy());
    this.once('close', () => clearTimeout(timer));
  };
}
