import type { Activator } from '../activation/activator.js';
import type { Registry } from '../registry/registry.js';
import type { CertificateStore } from '../router/accepting/tls.js';
import type { Logger } from '../util/log.js';

/**
 * What differs between serving an apps file on one machine and serving the farm's MongoDB
 * registry: the work around serving, not the serving itself.
 */
export interface ServingMode {
  /** Before arr serves (the registry is loaded). */
  beforeServing(): Promise<void>;
  /** The background work that keeps this node in step: the file watch, or polling and beats. */
  startBackground(): void;
  stopBackground(): void;
  /** Reads the registry again now (a reload, SIGHUP); resolves once what it found is applied. */
  reload(): Promise<void>;
  /** After arr stopped serving and its instances are gone. */
  afterStopping(): Promise<void>;
}

/** What a reload of the registry acts on. */
export interface ReloadTargets {
  registry: Registry;
  activator: Activator;
  certs: CertificateStore;
  log: Logger;
}

/**
 * What follows a load that changed the apps: certificates are read again at their next
 * handshake, the instances of apps that left the registry (or now break a rule, or redirect) stop, and
 * those of apps whose version changed are replaced.
 */
export function applyReload(t: ReloadTargets, apps: number, from: string): void {
  t.certs.clear();
  // An app that became a redirect runs nothing: its instance stops as if it had left.
  const running = [...t.registry.apps()].filter((a) => a.edge?.redirect === undefined);
  t.activator.evictMissing(new Set(running.map((a) => a.id)));
  // Apps whose process, env, cwd, ready, user, group or revision changed: rolling replacements.
  t.activator.redeployChanged();
  t.log.info(`registry changed: ${apps} apps from ${from}`);
}
