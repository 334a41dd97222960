import type { AcmeManager } from './acme/manager.js';
import type { Activator } from './activation/activator.js';
import type { StateFile } from './activation/state-file.js';
import type { ServingMode } from './farm/mode.js';
import type { Operations } from './ops/ops.js';
import type { ServiceNotifier } from './ops/systemd.js';
import type { Registry } from './registry/registry.js';
import type { SessionTickets } from './router/accepting/session-tickets.js';
import type { Logger } from './util/log.js';

/** How long in-flight requests get to finish on SIGINT/SIGTERM. */
export const SHUTDOWN_GRACE_MS = 10_000;

/** How long a WebSocket ended on SIGINT/SIGTERM has to close before its connection is cut. */
export const WEBSOCKET_LINGER_MS = 1_000;

/** The parts of a running arr a stop goes through (composed by src/server.ts). */
export interface StopParts {
  log: Logger;
  notifier: ServiceNotifier | undefined;
  ops: Operations;
  mode: ServingMode;
  acme: AcmeManager | undefined;
  tickets: SessionTickets | undefined;
  /** Stops the idle timeout's and the health and recycle checks' timers. */
  stopWatches: () => void;
  /** The traffic: this process's listeners and router, or the worker processes'. */
  traffic: TrafficStop;
  activator: Activator;
  state: StateFile;
  registry: Registry;
}

/** The steps of a stop on the traffic's side. */
export interface TrafficStop {
  /** No new connections; resolves once the listeners are closed. */
  stopAccepting(): Promise<void>;
  /** Resolves once no request is in flight (WebSockets aside), or at `deadline`. */
  settled(deadline: number): Promise<void>;
  /** Ends the WebSockets still open; connections left after `lingerMs` are cut. */
  end(lingerMs: number): Promise<void>;
  /** Lets go of the connections to instances. */
  close(): void;
}

/**
 * arr's stop, in its order: background work first, then no new connections, the requests in
 * flight answered, the instances stopped, the WebSockets ended, and the stores closed last.
 * `run` begins it once (later calls get the same promise).
 */
export function stopInOrder(p: StopParts): { run(): Promise<void>; begun(): boolean } {
  let stopping: Promise<void> | undefined;
  const stop = async () => {
    p.log.info('arr stopping: no new connections; finishing what is in flight');
    // Sent now (after any message still on its way), awaited before arr exits.
    const told = p.notifier?.stopping();
    p.ops.stopping();
    p.mode.stopBackground();
    p.acme?.stop();
    p.tickets?.stop();
    p.stopWatches();
    const closed = p.traffic.stopAccepting();
    // Requests in flight are answered first; WebSockets keep working meanwhile.
    await p.traffic.settled(Date.now() + SHUTDOWN_GRACE_MS);
    // Then the instances stop: an app that closes its WebSockets on SIGTERM (the samples send
    // 1001) says goodbye through arr. WebSockets still open after that are ended.
    await p.activator.stopAll();
    p.state.close();
    await p.traffic.end(WEBSOCKET_LINGER_MS);
    await closed;
    p.traffic.close();
    await p.mode.afterStopping();
    await p.registry.close().catch(() => {});
    await p.acme?.close();
    await p.ops.close();
    await told;
    p.log.info('arr stopped');
  };
  return {
    run: () => {
      stopping ??= stop();
      return stopping;
    },
    begun: () => stopping !== undefined,
  };
}
