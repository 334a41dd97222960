import type { Activator, Target } from '../activation/activator.js';
import type { Registry } from '../registry/registry.js';
import { type App, type Machine, sameMachine } from '../registry/types.js';
import type { Logger } from '../util/log.js';

interface RemoteSet {
  machines: Machine[];
  next: number;
}

/**
 * Picks the instance for an app, per SPEC: this node's own instance; else, when the app has
 * its full count of instances elsewhere, one of those in turn; else a new instance here.
 */
export class Dispatcher {
  private readonly remote = new Map<string, RemoteSet>();
  /** Removals of unreachable instances under way, which an activation must not race. */
  private readonly releasing = new Map<string, Promise<void>>();

  constructor(
    private readonly activator: Activator,
    private readonly registry: Registry,
    private readonly log: Logger,
    /** This node's address in `machines`: its own entries are never remote. */
    private readonly advertise: string,
  ) {}

  /** The target when it is known without waiting: the hot path. */
  pick(app: App): Target | undefined {
    const local = this.activator.localTarget(app.id);
    if (local) return local;
    const set = this.remote.get(app.id);
    if (!set || set.machines.length < app.instances) return undefined;
    const machine = set.machines[set.next++ % set.machines.length]!;
    return { appId: app.id, machine, host: machine.host, port: machine.port, local: false };
  }

  /** Finds or starts an instance; throws ActivationError when none can be had. */
  async resolve(app: App): Promise<Target> {
    await this.releasing.get(app.id);
    const activation = await this.activator.activate(app);
    if (activation.kind === 'local') return activation.target;
    this.remote.set(app.id, { machines: activation.machines, next: 0 });
    const machine = activation.machines[Math.floor(Math.random() * activation.machines.length)]!;
    return { appId: app.id, machine, host: machine.host, port: machine.port, local: false };
  }

  /** An instance could not be reached: it is removed, so the next request goes elsewhere. */
  unreachable(target: Target): void {
    if (target.local) {
      this.activator.evict(target.appId, 'it refused a connection', target.port);
      return;
    }
    const set = this.remote.get(target.appId);
    if (set) set.machines = set.machines.filter((m) => !sameMachine(m, target.machine));
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
  updateRemote(all: Map<string, Machine[]>): void {
    for (const id of this.remote.keys()) if (!all.has(id)) this.remote.delete(id);
    for (const [id, list] of all) {
      const machines = list.filter((m) => m.host !== this.advertise);
      if (machines.length === 0) {
        this.remote.delete(id);
        continue;
      }
      const set = this.remote.get(id);
      if (set) set.machines = machines;
      else this.remote.set(id, { machines, next: 0 });
    }
  }

  /** Forgets what is known of other nodes' instances (the registry was reloaded). */
  clear(): void {
    this.remote.clear();
  }
}
