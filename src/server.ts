import type { Target } from './activation/target.js';
import type { ArrConfig } from './config.js';
import { openCore } from './core.js';
import { checkApps, reloader, warnOfSampleCertificate } from './lifecycle.js';
import type { ServiceNotifier } from './ops/systemd.js';
import type { Problem } from './registry/types.js';
import { boundPort, type Listeners, openListeners } from './router/accepting/listeners.js';
import { OpenWebSockets } from './router/accepting/open-websockets.js';
import { H2cEngine } from './router/carrying/h2c-engine.js';
import { HttpEngine } from './router/carrying/http-engine.js';
import { Router, type RouterOptions } from './router/deciding/router.js';
import { stopInOrder } from './stop-order.js';
import type { Logger } from './util/log.js';

export { StartError } from './core.js';

/**
 * A running arr, for the CLI (src/cli/serve-command.ts), which handles the signals: `stop` is
 * what SIGINT/SIGTERM do, `reload` what SIGHUP does; `serving` says arr serves (the listening
 * line, the start checks, READY=1), once the signals are handled: whoever waits for it may signal.
 */
export interface RunningArr {
  stop(): Promise<void>;
  reload(): Promise<void>;
  /** Whether a stop has begun (a reload then does nothing). */
  readonly stopping: boolean;
  serving(): void;
}

/** The engines that carry exchanges to instances, with the limits of the command line. */
export function openEngines(config: ArrConfig): { http: HttpEngine; h2c: H2cEngine } {
  const limits = {
    timeoutMs: config.proxyTimeoutMs,
    maxConnections: config.instanceConnections,
    bodyTimeoutMs: config.bodyTimeoutMs,
  };
  return { http: new HttpEngine(limits), h2c: new H2cEngine(limits) };
}

/**
 * Starts arr in one process (`--workers 0`): the state side (core.ts: the registry, the
 * activator, the mode's background work) and the traffic (the listeners and the router).
 * MongoDB's driver and the ACME client are loaded only when they are used.
 */
export async function startArr(
  config: ArrConfig,
  log: Logger,
  notifier?: ServiceNotifier,
): Promise<RunningArr> {
  // Connections to instances: those to an instance that is gone are closed at once.
  const { http, h2c } = openEngines(config);
  const closeConnections = (target: Target, graceful = false) => {
    http.closeConnections(target, graceful);
    h2c.closeConnections(target, graceful);
  };
  const core = await openCore(config, log, { onInstanceGone: closeConnections });
  const { registry, ops, acme, certs, tickets, activator, instances, mode, state } = core;
  const listeners = await openListeners(certs, {
    ...config,
    sockets: config.sockets,
    alpnChallenge: config.acme?.challenges.includes('tls-alpn-01')
      ? (host) => acme!.alpnChallenge(host)
      : undefined,
  });
  const router = openRouter(config, listeners, {
    registry,
    instances,
    log,
    http,
    h2c,
    observer: ops.observer,
    challenges: config.acme?.challenges.includes('http-01') ? acme : undefined,
    certificates: certs,
  });
  acme?.start();
  tickets?.start((keys) => listeners.https.setTicketKeys(keys), config.pollMs);
  const webSockets = new OpenWebSockets([listeners.http, listeners.https], listeners.h2);
  mode.startBackground();
  const stopIdleWatch = activator.watchIdle();
  const stopInstanceWatch = activator.watchInstances();

  const onStartProblems = (problems: Problem[]) => ops.noteStartProblems(problems);
  const reload = reloader({ config, log, listeners, certs, mode, registry, notifier, onStartProblems });

  const stop = stopInOrder({
    log,
    notifier,
    ops,
    mode,
    acme,
    tickets,
    stopWatches: () => {
      stopIdleWatch();
      stopInstanceWatch();
    },
    traffic: {
      stopAccepting: () => listeners.stopAccepting(),
      settled: (deadline) => webSockets.httpSettled(deadline),
      end: async (lingerMs) => {
        webSockets.endAll();
        await listeners.drain(lingerMs);
      },
      close: () => router.close(),
    },
    activator,
    state,
    registry,
  });
  return runningArr({ config, log, registry, notifier, onStartProblems }, stop, reload, () => ({
    port: boundPort(listeners.http),
    sslport: listeners.httpsPort,
  }));
}

/**
 * The RunningArr of a stop and a reload; `serving` says where arr listens (`where`: the ports
 * as bound, and what to add to the line), runs the start checks and tells the service manager.
 */
export function runningArr(
  parts: Parameters<typeof checkApps>[0] & { config: ArrConfig; notifier?: ServiceNotifier },
  stop: { run(): Promise<void>; begun(): boolean },
  reload: () => Promise<void>,
  where: () => { port: number; sslport: number; more?: string },
): RunningArr {
  return {
    stop: stop.run,
    reload,
    get stopping() {
      return stop.begun();
    },
    serving() {
      const { port, sslport, more } = where();
      listeningLine(parts.config, parts.log, port, sslport, more);
      warnOfSampleCertificate(parts);
      checkApps(parts);
      void parts.notifier?.ready('serving');
    },
  };
}

/** The router over these listeners and instances, with the limits of the command line. */
export function openRouter(
  config: ArrConfig,
  listeners: Listeners,
  parts: Pick<
    RouterOptions,
    'registry' | 'instances' | 'log' | 'http' | 'h2c' | 'observer' | 'challenges' | 'certificates'
  >,
): Router {
  const router = new Router({
    ...parts,
    httpsPort: listeners.httpsPort,
    proxyTimeoutMs: config.proxyTimeoutMs,
  });
  listeners.route(router);
  return router;
}

/** The line that says arr serves (tests and operators wait for it). */
export function listeningLine(
  config: ArrConfig,
  log: Logger,
  port: number,
  sslport: number,
  more = '',
): void {
  const where = config.bind ?? '*';
  const passed = config.sockets?.http !== undefined || config.sockets?.https !== undefined;
  log.info(
    `arr listening on http://${where}:${port} and https://${where}:${sslport}, advertising ${config.advertise}${passed ? ' (sockets passed by the service manager)' : ''}${more}`,
  );
  if (!config.http2) log.info('--no-http2: the TLS port speaks HTTP/1.1 only');
  if (config.trustProxyProtocol)
    log.info('--trust-proxy-protocol: every connection must begin with a PROXY header; others are closed');
}
