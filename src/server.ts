import type { Server as TlsServer } from 'node:tls';
import { FileAcmeStore } from './acme/file-store.js';
import { KeySeal } from './acme/key-seal.js';
import { AcmeManager } from './acme/manager.js';
import { MongoAcmeStore } from './acme/mongo-store.js';
import { Activator, type Target } from './activation/activator.js';
import { InstanceChooser } from './activation/chooser.js';
import { Confinement } from './activation/confine.js';
import { PortAllocator } from './activation/port-allocator.js';
import { StateFile } from './activation/state-file.js';
import { type ArrConfig, UsageError } from './config.js';
import { FarmMode } from './farm/farm-mode.js';
import { FileMode } from './farm/file-mode.js';
import type { ServingMode } from './farm/mode.js';
import { Operations } from './ops/ops.js';
import { envExposure } from './registry/apps-file.js';
import { FileRegistry } from './registry/file-registry.js';
import { databaseName, MongoRegistry, redactUrl } from './registry/mongo-registry.js';
import type { LoadReport, Registry } from './registry/registry.js';
import { formatProblem } from './registry/types.js';
import { HttpEngine } from './router/http-engine.js';
import { boundPort, openListeners } from './router/listeners.js';
import { OpenWebSockets } from './router/open-websockets.js';
import { Router } from './router/router.js';
import { CertificateStore } from './router/tls.js';
import type { Logger } from './util/log.js';
import { claimPrivateDir, UnsafePathError } from './util/private-dir.js';

/** How long in-flight requests get to finish on SIGINT/SIGTERM. */
const SHUTDOWN_GRACE_MS = 10_000;

/** How long a WebSocket ended on SIGINT/SIGTERM has to close before its connection is cut. */
const WEBSOCKET_LINGER_MS = 1_000;

/** arr could not start for a reason outside the command line (the CLI prints it, exits 1). */
export class StartError extends Error {}

/**
 * Starts arr: the registry, the activator, the listeners and the router, and the mode's
 * background work (the apps file watch, or the farm's polling and heartbeats).
 */
export async function startArr(config: ArrConfig, log: Logger): Promise<{ stop(): Promise<void> }> {
  claimDirectories(config);
  // No orphans: instances a previous run of this arr left behind are stopped before anything else.
  const state = new StateFile(
    config.stateDir,
    `${config.bind ?? 'all'}_${config.port}_${config.sslport}`,
    log,
    config.mongo ? undefined : config.apps,
  );
  await state.takeOver();
  const registry = config.mongo ? new MongoRegistry(config.mongo) : new FileRegistry(config.apps);
  const report = await loadAtStart(registry, config);
  for (const p of report.problems) log.warn(`registry: ${formatProblem(p)}`);
  const exposed = registry.kind === 'file' ? await envExposure(registry.path, registry.apps()) : undefined;
  if (exposed) log.warn(`registry: ${exposed}`);
  const source = config.mongo ? `MongoDB ${redactUrl(config.mongo)}` : config.apps;
  log.info(`registry: ${report.apps} apps from ${source}`);

  const ops = new Operations(config, registry, log); // --admin (health, metrics, dashboard), --access-log
  const acme = config.acme ? await startAcme(config, registry, log, ops) : undefined;
  const certs = new CertificateStore(registry, log, acme);
  // What the activator and the farm's background work use: with metrics on, every store
  // operation is counted. Lookups (router, certificates) go to the registry itself.
  const store = ops.instrument(registry as Registry);
  // Connections to instances: those to an instance that is gone are closed at once.
  const http = new HttpEngine({
    timeoutMs: config.proxyTimeoutMs,
    maxConnections: config.instanceConnections,
    bodyTimeoutMs: config.bodyTimeoutMs,
  });
  const forget = (target: Target, graceful = false) => http.forget(target, graceful);
  // What instances go through before their program runs (cgroup, user, capabilities).
  const confined = await Confinement.open(log);
  if (typeof confined === 'string') throw new StartError(confined);
  ops.limitsFrom((app) => confined.unenforced(app.limits));
  const activator = new Activator(store, new PortAllocator(config.range), log, {
    advertise: config.advertise,
    startTimeoutMs: config.startTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    onStart: ops.onStart,
    onOutput: ops.onOutput,
    onInstanceGone: forget,
    confinement: confined,
    drainMs: config.drainMs,
    // In a farm, the other nodes send to a replaced instance until they have read the registry again.
    lingerMs: config.mongo ? 2 * config.pollMs + 500 : 0,
    events: {
      spawned: (proc, app, port) => state.spawned(proc, app, port),
      exited: (proc) => state.exited(proc),
      ended: ops.instanceEnded,
      deployed: (app, result, detail) => {
        state.deployed(app, result, detail);
        ops.metrics?.deployed(app, result);
      },
    },
  });
  const instances = new InstanceChooser(activator, store, log, config.advertise, forget);
  const targets = { registry, activator, certs, log };
  const mode: ServingMode =
    registry.kind === 'mongo'
      ? new FarmMode({
          ...targets,
          registry: ops.instrument(registry),
          url: registry.url,
          instances,
          advertise: config.advertise,
          pollMs: config.pollMs,
          heartbeatMs: config.heartbeatMs,
        })
      : new FileMode({ ...targets, registry }, report.problems);

  await mode.beforeServing();
  await ops.listen(activator);
  const listeners = await openListeners(certs, {
    ...config,
    alpnChallenge: config.acme?.challenges.includes('tls-alpn-01')
      ? (host) => acme!.alpnChallenge(host)
      : undefined,
  });
  if (!listeners.h2) log.info('--no-http2: the TLS port speaks HTTP/1.1 only');
  const router = new Router({
    registry,
    instances,
    log,
    httpsPort: listeners.httpsPort,
    http,
    proxyTimeoutMs: config.proxyTimeoutMs,
    observer: ops.observer,
    challenges: config.acme?.challenges.includes('http-01') ? acme : undefined,
  });
  listeners.route(router);
  // Session tickets from the store: the same keys on every node sharing it (and across restarts).
  acme?.start((keys) => (listeners.https as unknown as TlsServer).setTicketKeys(keys));
  const webSockets = new OpenWebSockets([listeners.http, listeners.https], listeners.h2);
  const where = config.bind ?? '*';
  log.info(
    `arr listening on http://${where}:${boundPort(listeners.http)} and https://${where}:${listeners.httpsPort}, advertising ${config.advertise}`,
  );
  if (config.trustProxyProtocol)
    log.info('--trust-proxy-protocol: every connection must begin with a PROXY header; others are closed');
  mode.startBackground();
  const stopIdleWatch = activator.watchIdle();

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('arr stopping: no new connections; finishing what is in flight');
      ops.stopping();
      mode.stopBackground();
      acme?.stop();
      stopIdleWatch();
      const closed = listeners.stopAccepting();
      // Requests in flight are answered first; WebSockets keep working meanwhile.
      await webSockets.httpSettled(Date.now() + SHUTDOWN_GRACE_MS);
      // Then the instances stop: an app that closes its WebSockets on SIGTERM (the samples send
      // 1001) says goodbye through arr. WebSockets still open after that are ended.
      await activator.stopAll();
      state.close();
      webSockets.endAll();
      await listeners.drain(WEBSOCKET_LINGER_MS);
      await closed;
      router.close();
      await mode.afterStopping();
      await registry.close().catch(() => {});
      await acme?.close();
      await ops.close();
      log.info('arr stopped');
    })();
    return stopping;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stop().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'arr did not stop cleanly');
          process.exit(1);
        },
      );
    });
  }
  return { stop };
}

/**
 * arr acts on what its state directory lists (process groups to stop) and serves what its ACME
 * directory holds: another user who can write either could make arr kill any process or serve
 * their certificate. Both must be arr's own (made so when missing), or arr does not start.
 */
function claimDirectories(config: ArrConfig): void {
  try {
    claimPrivateDir(config.stateDir, '--state-dir');
    if (config.acme && !config.mongo) claimPrivateDir(config.acme.dir, '--acme-dir');
  } catch (err) {
    if (err instanceof UnsafePathError) throw new UsageError(err.message);
    throw err;
  }
}

/** ACME on: its store (MongoDB with --mongo, else --acme-dir) and manager, with what the store has. */
async function startAcme(
  config: ArrConfig,
  registry: Registry,
  log: Logger,
  ops: Operations,
): Promise<AcmeManager> {
  const acme = config.acme!;
  const store = config.mongo
    ? new MongoAcmeStore(config.mongo, databaseName(config.mongo))
    : new FileAcmeStore(acme.dir);
  const manager = new AcmeManager(store, registry, log, {
    email: acme.email,
    directory: acme.directory,
    challenges: acme.challenges,
    node: `${config.advertise}:${config.port}:${config.sslport}:${process.pid}`,
    pollMs: config.pollMs,
    seal: new KeySeal(acme.secret),
    observer: ops.acmeObserver,
  });
  await manager.load();
  log.info(
    `acme: certificates from ${acme.directory} (${acme.challenges.join(', ')}), stored in ${config.mongo ? 'MongoDB' : acme.dir}${acme.secret ? ', private keys sealed' : ''}`,
  );
  return manager;
}

/**
 * The first load of the registry. A file that cannot be read is a usage error naming --apps; a
 * MongoDB that cannot be reached names --mongo and the cause. Neither carries a stack.
 */
async function loadAtStart(registry: FileRegistry | MongoRegistry, config: ArrConfig): Promise<LoadReport> {
  try {
    return await registry.load();
  } catch (err) {
    await registry.close().catch(() => {});
    const code = (err as NodeJS.ErrnoException).code;
    if (registry.kind === 'file') {
      throw new UsageError(
        `--apps: cannot read "${config.apps}" (${typeof code === 'string' ? code : (err as Error).message})`,
      );
    }
    throw new StartError(
      `--mongo: cannot read the registry at ${redactUrl(registry.url)} (${(err as Error).message})`,
    );
  }
}
