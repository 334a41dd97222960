import type { IncomingMessage, Server } from 'node:http';
import type { Duplex } from 'node:stream';
import { isWebSocketUpgrade } from '../deciding/host.js';
import type { H2Front } from './h2.js';

/**
 * The client connections of the WebSockets open through arr's listeners, kept for a graceful
 * stop: plain requests in flight are waited for, WebSockets (which may stay open for hours)
 * are not. Costs a set entry per WebSocket, nothing per request.
 */
export class OpenWebSockets {
  private readonly sockets = new Set<Duplex>();

  constructor(
    private readonly servers: Server[],
    /** HTTP/2 connections (counted by the TLS server too): their streams are told apart there. */
    private readonly h2?: H2Front,
  ) {
    for (const server of servers) {
      server.on('upgrade', (req: IncomingMessage, socket: Duplex) => {
        if (!isWebSocketUpgrade(req) || socket.closed) return;
        this.sockets.add(socket);
        socket.once('close', () => this.sockets.delete(socket));
      });
    }
  }

  /**
   * Waits until every connection of the servers is a WebSocket (the requests in flight are
   * answered), closing idle keep-alive connections meanwhile (unless `closeIdle` is false: a
   * retired worker waits for its clients to end them), or until the deadline.
   */
  async httpSettled(deadline: number, closeIdle = true): Promise<void> {
    for (;;) {
      if (closeIdle) for (const s of this.servers) s.closeIdleConnections();
      if ((await this.onlyWebSockets()) || Date.now() >= deadline) return;
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /** Whether every connection left is a WebSocket (no request in flight, no keep-alive connection). */
  async onlyWebSockets(): Promise<boolean> {
    const open = (await Promise.all(this.servers.map(connections))).reduce((a, b) => a + b, 0);
    const http1 = open - (this.h2?.connections ?? 0);
    return http1 <= this.sockets.size && (this.h2?.busyStreams() ?? 0) === 0;
  }

  /**
   * Ends every WebSocket's client connection (TCP FIN after whatever is still on its way): arr
   * does not write WebSocket frames itself, since it cannot know where a frame ends in what
   * it relays. Clients see the connection close; a closing handshake comes from the app.
   */
  endAll(): void {
    for (const s of this.sockets) s.end();
    this.h2?.endWebSockets();
  }
}

function connections(server: Server): Promise<number> {
  return new Promise((resolve) => server.getConnections((err, n) => resolve(err ? 0 : n)));
}
