import type { ClaimResult, Registry } from '../registry/registry.js';
import type { App, InstanceAddress } from '../registry/types.js';
import type { Logger } from '../util/log.js';
import type { AppTable, Instance } from './instances.js';
import { ActivationError } from './target.js';

/**
 * The registry side of this node's instances: each holds a slot (an entry in its app's
 * `machines`, under the farm-wide cap), claimed when it is ready, moved to its successor on a
 * replacement, released when it goes, put back when another node took it for dead. Also what
 * each instance runs (deploy notes).
 */
export class Slots {
  constructor(
    private readonly registry: Registry,
    private readonly table: AppTable,
    private readonly log: Logger,
    /** This node's address in `machines`. */
    private readonly advertise: string,
  ) {}

  /** The app's instances on other nodes, as the registry has them now. */
  async elsewhere(app: App): Promise<InstanceAddress[]> {
    try {
      return (await this.registry.addressesOf(app.id)).filter((m) => m.host !== this.advertise);
    } catch (err) {
      throw new ActivationError(
        'unavailable',
        'the registry is unavailable',
        `reading ${app.name}'s instances: ${String(err)}`,
      );
    }
  }

  /**
   * Claims a slot for a new instance at `machine`, under the cap. Throws an ActivationError
   * when the registry cannot be reached.
   */
  async claim(app: App, machine: InstanceAddress): Promise<ClaimResult> {
    try {
      let claim = await this.registry.claim(app.id, machine);
      if (!claim.granted && claim.machines.every((m) => m.host === this.advertise)) {
        // Only entries of this node fill the cap, yet this node runs no instance of the app (it
        // would not be starting one): they are left over (a release that failed). Drop, retry.
        for (const m of claim.machines) await this.registry.release(app.id, m);
        claim = await this.registry.claim(app.id, machine);
      }
      return claim;
    } catch (err) {
      throw new ActivationError(
        'unavailable',
        'the registry is unavailable',
        `claim for ${app.name} failed: ${String(err)}`,
      );
    }
  }

  /**
   * Moves the app's slot from the old instance to the new one at `machine`: the slot, and with
   * it the farm's cap, is held throughout (not claimed twice). An entry that was gone meanwhile
   * is claimed again, under the cap. Undefined when the new instance has its slot, else why not.
   */
  async move(app: App, from: InstanceAddress, to: InstanceAddress): Promise<string | undefined> {
    try {
      if (await this.registry.move(app.id, from, to)) return undefined;
      const claim = await this.registry.claim(app.id, to);
      if (claim.granted) return undefined;
      return 'its registry entry was gone and the cap is full';
    } catch (err) {
      return `the registry is unavailable (${String(err)})`;
    }
  }

  /** Releases a slot now, quietly (an instance that never came to serve). */
  async releaseNow(appId: string, machine: InstanceAddress): Promise<void> {
    await this.registry.release(appId, machine).catch(() => {});
  }

  /** Removes an instance's entry from the registry (in the background). */
  release({ app, target }: Instance): void {
    void this.registry.release(app.id, target.machine).catch((err: unknown) => {
      this.log.error(
        { app: app.name, id: app.id, err: String(err) },
        `could not remove ${app.name}'s instance from the registry`,
      );
    });
  }

  /** Records in the registry what the instance at `machine` runs, or the deploy that failed there (in the background). */
  note(app: App, machine: InstanceAddress, failed?: string): void {
    const note = { revision: app.revision ?? 0, ...(failed === undefined ? {} : { failed }) };
    void this.registry.noteDeploy(app.id, machine, note).catch((err: unknown) => {
      this.log.debug({ app: app.name, err: String(err) }, 'could not note a deploy in the registry');
    });
  }

  /**
   * Puts back the registry entry of each serving instance when it is missing (another node
   * took this one for dead, or a release raced a claim). When the cap is full meanwhile, the
   * instance no longer serves and is given to `stop`: the farm's count must not exceed it.
   */
  async reassert(stop: (instance: Instance) => void): Promise<void> {
    if (this.table.stopping || this.table.servingCount() === 0) return;
    const generation = this.table.generation;
    const all = await this.registry.allAddresses();
    // An instance was swapped for another meanwhile: this picture of the registry is stale.
    if (generation !== this.table.generation) return;
    for (const record of [...this.table.all()]) {
      const instance = record.serving;
      if (!instance || record.deploy) continue; // no instance, or its slot is moving
      const listed = all.get(record.id) ?? [];
      const { machine } = instance.target;
      if (listed.some((m) => m.host === machine.host && m.port === machine.port)) continue;
      const claim = await this.registry.claim(record.id, machine);
      const name = instance.app.name;
      if (claim.granted)
        this.log.warn({ app: name, id: record.id }, `${name}: its entry was missing; put back`);
      else if (this.table.unserve(record, instance)) {
        this.log.warn(
          { event: 'instance-stopping', app: name, id: record.id, pid: instance.proc.pid },
          `${name}: its entry was missing and the cap is full; stopping it`,
        );
        stop(instance);
      }
    }
  }
}
