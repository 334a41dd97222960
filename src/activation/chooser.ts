import type { Registry } from '../registry/registry.js';
import { type App, type InstanceAddress, sameInstanceAddress } from '../registry/types.js';
import type { Logger } from '../util/log.js';
import type { InstanceSource, Target } from './target.js';

/** The instances of one app on other nodes, taken in turn. */
interface RemoteSet {
  targets: Target[];
  next: number;
}

/**
 * Chooses the instance for each exchange with an app: this node's own instance; else, when the
 * app has its full count of instances on other nodes, one of those in turn; else a new instance
 * here. Knows nothing of HTTP.
 */
export class InstanceChooser {
  private readonly remote = new Map<string, RemoteSet>();
  /** Removals of unreachable instances under way, which an activation must not race. */
  private readonly releasing = new Map<string, Promise<void>>();

  constructor(
    private readonly activator: InstanceSource,
    private readonly registry: Registry,
    private readonly log: Logger,
    /** This node's address in `machines`: its own entries are never remote. */
    private readonly advertise: string,
    /**
     * Told when a remote instance is no longer used: connections kept to it can go, at once
     * (`graceful` false: it is unreachable) or once their exchanges are done.
     */
    private readonly closeConnections: (target: Target, graceful: boolean) => void = () => {},
  ) {}

  /** The target when it is known without waiting: the hot path, no allocation. */
  pick(app: App): Target | undefined {
    const local = this.activator.localTarget(app.id);
    if (local) return local;
    const set = this.remote.get(app.id);
    if (!set || set.targets.length < app.instances) return undefined;
    return set.targets[set.next++ % set.targets.length];
  }

  /** Finds or starts an instance; throws ActivationError when none can be had. */
  async resolve(app: App): Promise<Target> {
    await this.releasing.get(app.id);
    const activation = await this.activator.activate(app);
    if (activation.kind === 'local') return activation.target;
    const set = this.setRemote(app.id, activation.machines);
    return set.targets[Math.floor(Math.random() * set.targets.length)]!;
  }

  /** An instance could not be reached: it is removed, so the next exchange goes elsewhere. */
  unreachable(target: Target): void {
    if (target.local) {
      this.activator.evict(target.appId, 'it refused a connection', target.port);
      return;
    }
    const set = this.remote.get(target.appId);
    if (set) set.targets = set.targets.filter((t) => t !== target);
    this.closeConnections(target, false);
    this.log.warn(
      { app: target.appId, machine: target.machine },
      `instance of ${target.appId} at ${target.machine.host}:${target.machine.port} refused; removing it`,
    );
    const released = this.registry
      .release(target.appId, target.machine)
      .catch((err: unknown) => {
        this.log.error({ app: target.appId, err: String(err) }, 'could not remove an unreachable instance');
      })
      .finally(() => {
        if (this.releasing.get(target.appId) === released) this.releasing.delete(target.appId);
      });
    this.releasing.set(target.appId, released);
  }

  /** Takes in the farm's instances as the registry has them now (polled, off the hot path). */
  updateRemote(all: Map<string, InstanceAddress[]>): void {
    for (const id of this.remote.keys()) if (!all.has(id)) this.dropRemote(id);
    for (const [id, list] of all) {
      const machines = list.filter((m) => m.host !== this.advertise);
      if (machines.length === 0) this.dropRemote(id);
      else this.setRemote(id, machines);
    }
  }

  private dropRemote(appId: string): void {
    for (const t of this.remote.get(appId)?.targets ?? []) this.closeConnections(t, true);
    this.remote.delete(appId);
  }

  /** The app's remote instances become `machines`; targets of machines already known are kept. */
  private setRemote(appId: string, machines: InstanceAddress[]): RemoteSet {
    const known = this.remote.get(appId);
    const targets = machines.map(
      (machine) =>
        known?.targets.find((t) => sameInstanceAddress(t.machine, machine)) ?? {
          appId,
          machine,
          host: machine.host,
          port: machine.port,
          local: false,
        },
    );
    if (known) {
      for (const t of known.targets) if (!targets.includes(t)) this.closeConnections(t, true);
      known.targets = targets;
      return known;
    }
    const set = { targets, next: 0 };
    this.remote.set(appId, set);
    return set;
  }
}
