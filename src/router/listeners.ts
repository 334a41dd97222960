import { createServer as createHttpServer, type Server } from 'node:http';
import { createServer as createHttpsServer } from 'node:https';
import type { AddressInfo, Socket } from 'node:net';
import type { CertificateStore } from './tls.js';
import type { Router } from './router.js';

export interface Listeners {
  http: Server;
  https: Server;
  /** Stops accepting; open connections are left to finish. */
  stopAccepting(): Promise<void>;
  /** Closes idle keep-alive connections now, then every connection after `graceMs`. */
  drain(graceMs: number): Promise<void>;
}

const SERVER_OPTIONS = {
  // Idle keep-alive connections are closed after this; a little longer than common clients'.
  keepAliveTimeout: 65_000,
  // Slow or stalled request heads are cut off rather than held open.
  headersTimeout: 20_000,
  requestTimeout: 0,
  // arr answers a missing Host itself, with the same plain-text body as its other errors.
  requireHostHeader: false,
};

/** The plain and the TLS listener, both handing requests and upgrades to the router. */
export async function listen(
  router: Router,
  certs: CertificateStore,
  options: { port: number; sslport: number; bind?: string; cert: Buffer; key: Buffer },
): Promise<Listeners> {
  const http = createHttpServer(SERVER_OPTIONS, (req, res) => router.handleRequest(req, res, false));
  http.on('upgrade', (req, socket, head) => router.handleUpgrade(req, socket, head, false));

  const https = createHttpsServer(
    { ...SERVER_OPTIONS, cert: options.cert, key: options.key, SNICallback: certs.SNICallback, minVersion: 'TLSv1.2' },
    (req, res) => router.handleRequest(req, res, true),
  );
  https.on('upgrade', (req, socket, head) => router.handleUpgrade(req, socket, head, true));

  // Upgraded sockets leave the servers' own bookkeeping, so they are tracked here to be closed
  // on shutdown.
  const sockets = new Set<Socket>();
  for (const server of [http, https]) {
    server.on('connection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
    server.on('secureConnection', (s: Socket) => {
      sockets.add(s);
      s.once('close', () => sockets.delete(s));
    });
  }

  await Promise.all([listenOn(http, options.port, options.bind), listenOn(https, options.sslport, options.bind)]);

  return {
    http,
    https,
    stopAccepting: () =>
      Promise.all([http, https].map((s) => new Promise<void>((r) => s.close(() => r())))).then(() => {}),
    async drain(graceMs) {
      http.closeIdleConnections();
      https.closeIdleConnections();
      const deadline = Date.now() + graceMs;
      while (sockets.size > 0 && Date.now() < deadline) {
        http.closeIdleConnections();
        https.closeIdleConnections();
        await new Promise((r) => setTimeout(r, 50));
      }
      for (const s of sockets) s.destroy();
    },
  };
}

function listenOn(server: Server, port: number, host?: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: Error) => reject(err);
    server.once('error', onError);
    server.listen({ port, host }, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

export function boundPort(server: Server): number {
  return (server.address() as AddressInfo).port;
}
