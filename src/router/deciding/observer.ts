import type { Duplex } from 'node:stream';
import type { App } from '../../registry/types.js';
import type { DownstreamRequest, DownstreamResponse } from '../carrying/downstream.js';
import type { RefusalReason } from './policy/refusal.js';

/**
 * What the router tells about each exchange, for metrics and the access log (src/ops). The
 * router calls it only when one of them is on.
 */
export interface ExchangeObserver {
  /** A request reached arr: `app` is the app its host names (undefined when none does). */
  request(req: DownstreamRequest, res: DownstreamResponse, app: App | undefined): void;
  /** The same for a WebSocket upgrade, on the client's socket. */
  upgrade(req: DownstreamRequest, socket: Duplex, app: App | undefined): void;
  /** The status of the answer an upgrade got: 101, the instance's refusal, or arr's own. */
  upgradeAnswered(socket: Duplex, status: number): void;
  /** An exchange with an instance of this app failed: unreachable (refused) or broken off. */
  proxyError(app: App, unreachable: boolean): void;
  /** An edge policy of this app refused a request or upgrade (docs/policies.md). */
  policyRefused(app: App, reason: RefusalReason): void;
}
