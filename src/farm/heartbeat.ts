import type { Activator } from '../activation/activator.js';
import type { NodeLiveness, Registry } from '../registry/registry.js';
import type { Logger } from '../util/log.js';

export interface HeartbeatOptions {
  registry: Registry & NodeLiveness;
  activator: Activator;
  /** This node's address. */
  self: string;
  /** How long a beat keeps this node alive in the others' eyes. */
  ttlMs: number;
  log: Logger;
}

/**
 * This node's liveness record in the farm, and the clean-up of nodes that died: each beat
 * renews this node's record, removes the instance entries of nodes whose record expired, and
 * puts back any entry of this node's own instances that another node removed meanwhile.
 */
export class Heartbeat {
  constructor(private readonly o: HeartbeatOptions) {}

  readonly tick = async (): Promise<void> => {
    const { registry, self, log } = this.o;
    try {
      await registry.beat(self, this.o.ttlMs);
      for (const node of await registry.deadNodes(self)) {
        const removed = await registry.releaseMachine(node);
        await registry.forgetNode(node);
        log.warn(`node ${node} stopped beating: removed its ${removed} instance entries`);
      }
      await this.o.activator.reassert();
    } catch (err) {
      // FarmMode reports an unreachable registry; nothing to add per beat.
      log.debug({ err: (err as Error).message }, 'heartbeat failed');
    }
  };
}
