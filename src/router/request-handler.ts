import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';

/**
 * What the listeners (listeners.ts, h2.ts) hand requests and upgrades to: the Router, seen
 * from below, so that accepting connections does not depend on how a request is decided.
 */
export interface RequestHandler {
  handleRequest(req: IncomingMessage, res: ServerResponse, secure: boolean): void;
  handleUpgrade(req: IncomingMessage, socket: Duplex, head: Buffer, secure: boolean): void;
}
