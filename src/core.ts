import type { DnsProvider } from './acme/dns/provider.js';
import { FileAcmeStore } from './acme/file-store.js';
import { KeySeal } from './acme/key-seal.js';
import type { AcmeManager, CertificatePem } from './acme/manager.js';
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
import { Operations } from './ops/ops.js';
import type { WorkerFleet } from './ops/worker-asks.js';
import { envExposure } from './registry/apps-file.js';
import { FileRegistry } from './registry/file-registry.js';
import type { MongoRegistry } from './registry/mongo-registry.js';
import type { LoadReport, Registry } from './registry/registry.js';
import { formatProblem, type InstanceAddress } from './registry/types.js';
import { SessionTickets } from './router/accepting/session-tickets.js';
import { CertificateStore } from './router/accepting/tls.js';
import type { Logger } from './util/log.js';
import { claimPrivateDir, UnsafePathError } from './util/private-dir.js';

/** arr could not start for a reason outside the command line (the CLI prints it, exits 1). */
export class StartError extends Error {}

/** What the state side tells the traffic side (in this process, or in worker processes). */
export interface CoreHooks {
  /** An instance exited (or, `graceful`, drains after a deploy): connections kept to it go. */
  onInstanceGone(target: Target, graceful?: boolean): void;
  /** An instance serving an app no longer takes new exchanges (it stops, or another took its place). */
  onUnserved?(target: Target): void;
  /** Asked before an idle stop: whether the instance is idle everywhere (workers count their own). */
  confirmIdle?(target: Target): Promise<boolean>;
  /** The documents of each load of the registry (the first one included). */
  onApply?(docs: readonly { doc: unknown }[]): void;
  /** The farm's instances on other nodes, as polled (after the chooser took them in). */
  onRemote?(all: Map<string, InstanceAddress[]>): void;
  /** With workers: whom the admin endpoint asks for their counters and traffic. */
  workers?: WorkerFleet;
  /** Each ACME certificate served from now on (new or renewed). */
  onCertificate?(host: string, pem: CertificatePem): void;
}

/**
 * The state side of arr, which one process owns: the state file, the registry, the admin
 * endpoint's parts, ACME, the session ticket keys, the activator and the mode's background
 * work (the apps file watch, or the farm's polling and heartbeats). server.ts adds the traffic
 * to it in the same process; primary.ts hands the traffic to worker processes.
 */
export interface Core {
  state: StateFile;
  registry: FileRegistry | MongoRegistry;
  ops: Operations;
  acme: AcmeManager | undefined;
  certs: CertificateStore;
  tickets: SessionTickets | undefined;
  activator: Activator;
  instances: InstanceChooser;
  mode: ServingMode;
  report: LoadReport;
}

/** Opens the state side, up to `mode.beforeServing()`; the caller starts the background work. */
export async function openCore(config: ArrConfig, log: Logger, hooks: CoreHooks): Promise<Core> {
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
  if (hooks.onApply) registry.onApply(hooks.onApply);
  const report = await loadAtStart(registry, config);
  for (const p of report.problems) log.warn(`registry: ${formatProblem(p)}`);
  const exposed = registry.kind === 'file' ? await envExposure(registry.path, registry.apps()) : undefined;
  if (exposed) log.warn(`registry: ${exposed}`);
  const source = mongo ? `MongoDB ${mongo.redactUrl(config.mongo!)}` : config.apps;
  log.info(`registry: ${report.apps} apps from ${source}`);

  // --admin (health, metrics, dashboard), --access-log (with workers: theirs, asked for)
  const ops = new Operations(config, registry, log, hooks.workers);
  const acme = config.acme ? await startAcme(config, registry, log, ops, hooks.onCertificate) : undefined;
  const certs = new CertificateStore(registry, log, acme);
  // TLS session tickets: with ACME on, the keys of its store, the same on every node sharing it
  // (and across restarts); otherwise each listener's own (or, with workers, the primary's).
  const tickets = acme ? new SessionTickets(acme.ticketKeySource, log) : undefined;
  await tickets?.load();
  // What the activator and the farm's background work use, wrapped once: with metrics on, every
  // store operation is counted. Lookups (router, certificates) go to the registry itself.
  const farmStore = registry.kind === 'mongo' ? ops.instrument(registry) : undefined;
  const store = farmStore ?? ops.instrument(registry as Registry);
  // What instances go through before their program runs (cgroup, user, capabilities).
  const confined = await Confinement.open(log);
  if (typeof confined === 'string') throw new StartError(confined);
  // Should arr die, its watchdog kills what is left in these groups (a daemon that left its process group) and removes them.
  if (confined.cgroups) state.watchGroups(confined.cgroups.base, confined.cgroups.limits.v1Folders());
  ops.limitsFrom((app) => confined.unenforced(app.limits));
  const activator = new Activator(store, new PortAllocator(config.range), log, {
    advertise: config.advertise,
    startTimeoutMs: config.startTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    onStart: ops.onStart,
    onOutput: ops.onOutput,
    stderrLevel: config.appStderrLevel,
    outputLog: ops.outputLog,
    onInstanceGone: hooks.onInstanceGone,
    onUnserved: hooks.onUnserved,
    confirmIdle: hooks.confirmIdle,
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
  const instances = new InstanceChooser(activator, store, log, config.advertise, hooks.onInstanceGone);
  const targets = { registry, activator, certs, log };
  const mode: ServingMode =
    registry.kind === 'mongo'
      ? new (await import('./farm/farm-mode.js')).FarmMode({
          ...targets,
          registry: farmStore!, // made above for a registry of this kind
          url: registry.url,
          instances: hooks.onRemote ? followRemote(instances, hooks.onRemote) : instances,
          advertise: config.advertise,
          pollMs: config.pollMs,
          heartbeatMs: config.heartbeatMs,
        })
      : new FileMode({ ...targets, registry }, report.problems);

  await mode.beforeServing();
  // Limits this host cannot enforce, said at start (and again for an app that comes later).
  for (const app of registry.apps()) activator.tellUnenforced(app);
  await ops.listen(activator, certs);
  return { state, registry, ops, acme, certs, tickets, activator, instances, mode, report };
}

/** The chooser's updates of the farm's instances, told to `onRemote` as well. */
function followRemote(
  instances: InstanceChooser,
  onRemote: (all: Map<string, InstanceAddress[]>) => void,
): Pick<InstanceChooser, 'updateRemote'> {
  return {
    updateRemote(all) {
      instances.updateRemote(all);
      onRemote(all);
    },
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
  onServed?: (host: string, pem: CertificatePem) => void,
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
    onServed,
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
