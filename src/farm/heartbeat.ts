import type { Activator } from '../activation/activator.js';
import type { FarmRegistry } from '../registry/registry.js';
import type { Logger } from '../util/log.js';

export interface HeartbeatOptions {
  registry: FarmRegistry;
  activator: Activator;
  /** This node's address. */
  self: string;
  /** How long a beat keeps this node alive in the others' eyes. */
  ttlMs: number;
  log: Logger;
}

/**
 * This node's liveness record in the farm, and the clean-up of nodes that died: each beat
 * renews this node's record and its hold on the farm's chores (one node holds them for all),
 * the holder removes the instance entries of nodes whose record expired, and every node puts
 * back any entry of its own instances that was removed meanwhile. A beat reads nothing that
 * grows with the farm, but for the holder's list of nodes.
 */
export class Heartbeat {
  /** Whether this node held the farm's chores at its last beat. */
  holdsChores = false;

  constructor(private readonly o: HeartbeatOptions) {}

  readonly tick = async (): Promise<void> => {
    const { registry, self, ttlMs, log } = this.o;
    try {
      await registry.beat(self, ttlMs);
      this.holdsChores = await registry.holdChores(self, ttlMs);
      if (this.holdsChores) await this.sweep();
      await this.o.activator.reassert();
    } catch (err) {
      // FarmMode reports an unreachable registry; nothing to add per beat.
      log.debug({ err: (err as Error).message }, 'heartbeat failed');
    }
  };

  private async sweep(): Promise<void> {
    const { registry, self, log } = this.o;
    for (const node of await registry.deadNodes(self)) {
      const removed = await registry.releaseMachine(node);
      await registry.forgetNode(node);
      log.warn(`node ${node} stopped beating: removed its ${removed} instance entries`);
    }
  }
}
