import type { DnsProvider } from './acme/dns/provider.js';
import { FileAcmeStore } from './acme/file-store.js';
import { KeySeal } from './acme/key-seal.js';
import type { AcmeManager } from './acme/manager.js';
import type { AcmeStore } from './acme/store.js';
import { Activator } from './activation/activator.js';
import { InstanceChooser } from './activation/chooser.js';
import { Confinement } from './activation/confine.js';
import { PortAllocator } from './activation/port-allocator.js';
import { StateFile } from './activation/state-file.js';
import type { Target } from './activation/target.js';
import { type ArrConfig, UsageError } from './config.js';
import { FileMode } from './farm/file-mode.js';
import type { ServingMode } from './farm/mode.js';
import { checkApps, reloader, warnOfSampleCertificate } from './lifecycle.js';
import { Operations } from './ops/ops.js';
import type { ServiceNotifier } from './ops/systemd.js';
import { envExposure } from './registry/apps-file.js';
import { FileRegistry } from './registry/file-registry.js';
import type { MongoRegistry } from './registry/mongo-registry.js';
import type { LoadReport, Registry } from './registry/registry.js';
import { formatProblem, type Problem } from './registry/types.js';
import { boundPort, openListeners } from './router/accepting/listeners.js';
import { OpenWebSockets } from './router/accepting/open-websockets.js';
import { SessionTickets } from './router/accepting/session-tickets.js';
import { CertificateStore } from './router/accepting/tls.js';
import { H2cEngine } from './router/carrying/h2c-engine.js';
import { HttpEngine } from './router/carrying/http-engine.js';
import { Router } from './router/deciding/router.js';
import { stopInOrder } from './stop-order.js';
import type { Logger } from './util/log.js';
import { claimPrivateDir, UnsafePathError } from './util/private-dir.js';

/** arr could not start for a reason outside the command line (the CLI prints it, exits 1). */
export class StartError extends Error {}

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

/**
 * Starts arr: the registry, the activator, the listeners and the router, and the mode's
 * background work (the apps file watch, or the farm's polling and heartbeats). MongoDB's
 * driver and the ACME client are loaded only when they are used.
 */
export async function startArr(
  config: ArrConfig,
  log: Logger,
  notifier?: ServiceNotifier,
): Promise<RunningArr> {
  claimDirectories(config);
  // No orphans: instances a previous run of this arr left behind are stopped before anything else.
  const state = new StateFile(
    config.stateDir,
    `${config.bind ?? 'all'}_${config.port}_${config.sslport}`,
    log,
    config.mongo ? undefined : config.apps,
  );
  await state.takeOver();
  const mongo = config.mongo ? await import('./registry/mongo-registry.js') : undefined;
  const registry = mongo ? new mongo.MongoRegistry(config.mongo!) : new FileRegistry(config.apps);
  const report = await loadAtStart(registry, config);
  for (const p of report.problems) log.warn(`registry: ${formatProblem(p)}`);
  const exposed = registry.kind === 'file' ? await envExposure(registry.path, registry.apps()) : undefined;
  if (exposed) log.warn(`registry: ${exposed}`);
  const source = mongo ? `MongoDB ${mongo.redactUrl(config.mongo!)}` : config.apps;
  log.info(`registry: ${report.apps} apps from ${source}`);

  const ops = new Operations(config, registry, log); // --admin (health, metrics, dashboard), --access-log
  const acme = config.acme ? await startAcme(config, registry, log, ops) : undefined;
  const certs = new CertificateStore(registry, log, acme);
  // TLS session tickets: with ACME on, the keys of its store, the same on every node sharing it
  // (and across restarts); otherwise each listener's own.
  const tickets = acme ? new SessionTickets(acme.ticketKeySource, log) : undefined;
  await tickets?.load();
  // What the activator and the farm's background work use, wrapped once: with metrics on, every
  // store operation is counted. Lookups (router, certificates) go to the registry itself.
  const farmStore = registry.kind === 'mongo' ? ops.instrument(registry) : undefined;
  const store = farmStore ?? ops.instrument(registry as Registry);
  // Connections to instances: those to an instance that is gone are closed at once.
  const http = new HttpEngine({
    timeoutMs: config.proxyTimeoutMs,
    maxConnections: config.instanceConnections,
    bodyTimeoutMs: config.bodyTimeoutMs,
  });
  const h2c = new H2cEngine({
    timeoutMs: config.proxyTimeoutMs,
    maxConnections: config.instanceConnections,
    bodyTimeoutMs: config.bodyTimeoutMs,
  });
  const closeConnections = (target: Target, graceful = false) => {
    http.closeConnections(target, graceful);
    h2c.closeConnections(target, graceful);
  };
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
    stderrLevel: config.appStderrLevel,
    outputLog: ops.outputLog,
    onInstanceGone: closeConnections,
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
  const instances = new InstanceChooser(activator, store, log, config.advertise, closeConnections);
  const targets = { registry, activator, certs, log };
  const mode: ServingMode =
    registry.kind === 'mongo'
      ? new (await import('./farm/farm-mode.js')).FarmMode({
          ...targets,
          registry: farmStore!, // made above for a registry of this kind
          url: registry.url,
          instances,
          advertise: config.advertise,
          pollMs: config.pollMs,
          heartbeatMs: config.heartbeatMs,
        })
      : new FileMode({ ...targets, registry }, report.problems);

  await mode.beforeServing();
  // Limits this host cannot enforce, said at start (and again for an app that comes later).
  for (const app of registry.apps()) activator.tellUnenforced(app);
  await ops.listen(activator, certs);
  const listeners = await openListeners(certs, {
    ...config,
    sockets: config.sockets,
    alpnChallenge: config.acme?.challenges.includes('tls-alpn-01')
      ? (host) => acme!.alpnChallenge(host)
      : undefined,
  });
  if (!config.http2) log.info('--no-http2: the TLS port speaks HTTP/1.1 only');
  const router = new Router({
    registry,
    instances,
    log,
    httpsPort: listeners.httpsPort,
    http,
    h2c,
    proxyTimeoutMs: config.proxyTimeoutMs,
    observer: ops.observer,
    challenges: config.acme?.challenges.includes('http-01') ? acme : undefined,
  });
  listeners.route(router);
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
    listeners,
    webSockets,
    activator,
    state,
    router,
    registry,
  });
  const serving = () => {
    const where = config.bind ?? '*';
    const passed = config.sockets?.http !== undefined || config.sockets?.https !== undefined;
    log.info(
      `arr listening on http://${where}:${boundPort(listeners.http)} and https://${where}:${listeners.httpsPort}, advertising ${config.advertise}${passed ? ' (sockets passed by the service manager)' : ''}`,
    );
    if (config.trustProxyProtocol)
      log.info('--trust-proxy-protocol: every connection must begin with a PROXY header; others are closed');
    warnOfSampleCertificate({ config, registry, log });
    checkApps({ registry, log, onStartProblems });
    void notifier?.ready('serving');
  };
  return {
    stop: stop.run,
    reload,
    get stopping() {
      return stop.begun();
    },
    serving,
  };
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
  let store: AcmeStore;
  if (config.mongo) {
    const { MongoAcmeStore } = await import('./acme/mongo-store.js');
    const { databaseName } = await import('./registry/mongo-registry.js');
    store = new MongoAcmeStore(config.mongo, databaseName(config.mongo));
  } else store = new FileAcmeStore(acme.dir);
  const { AcmeManager } = await import('./acme/manager.js');
  const dns = acme.dns ? await dnsProvider(acme.dns) : undefined;
  const manager = new AcmeManager(store, registry, log, {
    email: acme.email,
    directory: acme.directory,
    challenges: acme.challenges,
    node: `${config.advertise}:${config.port}:${config.sslport}:${process.pid}`,
    pollMs: config.pollMs,
    seal: new KeySeal(acme.secret),
    observer: ops.acmeObserver,
    ...(dns ? { dns: { provider: dns, waitMs: acme.dns!.waitMs } } : {}),
  });
  await manager.load();
  log.info(
    `acme: certificates from ${acme.directory} (${acme.challenges.join(', ')}), stored in ${config.mongo ? 'MongoDB' : acme.dir}${acme.secret ? ', private keys sealed' : ''}`,
  );
  if (dns)
    log.info(
      `acme: DNS-01 through ${dns.description}; ${acme.dns!.waitMs > 0 ? `records waited for on the authoritative servers up to ${acme.dns!.waitMs / 1000} s` : 'propagation not checked (--acme-dns-wait 0)'}`,
    );
  return manager;
}

/** `--acme-dns`: the hook or the RFC 2136 server that DNS-01 records go through. */
async function dnsProvider(dns: NonNullable<NonNullable<ArrConfig['acme']>['dns']>): Promise<DnsProvider> {
  if (dns.kind === 'exec') return new (await import('./acme/dns/exec-hook.js')).ExecHook(dns.path);
  return new (await import('./acme/dns/rfc2136.js')).Rfc2136Provider(dns.server, dns.tsig);
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
    const { redactUrl } = await import('./registry/mongo-registry.js');
    throw new StartError(
      `--mongo: cannot read the registry at ${redactUrl(registry.url)} (${(err as Error).message})`,
    );
  }
}
