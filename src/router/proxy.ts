import { Agent, type IncomingMessage, type ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import httpProxy from 'http-proxy';
import type { Target } from '../activation/activator.js';
import { rejectUpgrade, sendError } from './respond.js';

export type TargetErrorHandler = (target: Target, err: NodeJS.ErrnoException) => void;

/** Errors that mean the instance is not there at all (as opposed to failing mid-exchange). */
const UNREACHABLE = new Set(['ECONNREFUSED', 'EHOSTUNREACH', 'ENETUNREACH', 'EADDRNOTAVAIL']);

export function isUnreachable(err: NodeJS.ErrnoException): boolean {
  return UNREACHABLE.has(err.code ?? '');
}

/**
 * Moves requests and WebSockets to instances over plain HTTP. Connections to instances are
 * kept alive and reused. Every error on either side ends in a short answer to the client (or a
 * closed socket once the answer has begun) and a call to `onTargetError`; none escapes.
 */
export class ProxyEngine {
  private readonly agent = new Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: 256 });
  private readonly proxy = httpProxy.createProxyServer({ xfwd: false, agent: this.agent });

  constructor(private readonly onTargetError: TargetErrorHandler) {
    // Callbacks are given per call; this is a last guard against an error without one.
    this.proxy.on('error', () => {});
  }

  web(req: IncomingMessage, res: ServerResponse, target: Target): void {
    this.proxy.web(req, res, { target: { host: target.host, port: target.port } }, (err) => {
      const e = err as NodeJS.ErrnoException;
      if (req.destroyed && !isUnreachable(e)) return; // the client went away: nothing to answer
      this.onTargetError(target, e);
      sendError(res, 502, isUnreachable(e) ? 'the application is not reachable' : 'the application failed to answer');
    });
  }

  ws(req: IncomingMessage, socket: Duplex, head: Buffer, target: Target): void {
    // An upgraded connection never goes back to a pool, so no agent here.
    this.proxy.ws(req, socket, head, { target: { host: target.host, port: target.port }, agent: false }, (err) => {
      const e = err as NodeJS.ErrnoException;
      this.onTargetError(target, e);
      rejectUpgrade(socket, 502, isUnreachable(e) ? 'the application is not reachable' : 'the application failed');
    });
  }

  close(): void {
    this.agent.destroy();
    this.proxy.close();
  }
}
