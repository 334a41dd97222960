import type { Duplex } from 'node:stream';
import type { DownstreamRequest, DownstreamResponse } from '../carrying/downstream.js';

/**
 * What the listeners (listeners.ts, h2.ts) hand requests and upgrades to: the Router, seen
 * from below, so that accepting connections does not depend on how a request is decided.
 */
export interface RequestHandler {
  handleRequest(req: DownstreamRequest, res: DownstreamResponse, secure: boolean): void;
  handleUpgrade(req: DownstreamRequest, socket: Duplex, head: Buffer, secure: boolean): void;
}
