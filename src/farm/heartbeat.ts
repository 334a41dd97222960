import type { Activator } from '../activation/activator.js';
import type { NodeLiveness, Registry } from '../registry/registry.js';
import type { Logger } from '../util/log.js';

/**
 * This node's liveness record in the farm, and the clean-up of nodes that died: each beat
 * renews this node's record, removes the instance entries of nodes whose record expired, and
 * puts back any entry of this node's own instances that another node removed meanwhile.
 */
export class Heartbeat {
  constructor(
    private readonly registry: Registry & NodeLiveness,
    private readonly activator: Activator,
    private readonly self: string,
    private readonly ttlMs: number,
    private readonly log: Logger,
  ) {}

  readonly tick = async (): Promise<void> => {
    try {
      await this.registry.beat(this.self, this.ttlMs);
      for (const node of await this.registry.deadNodes(this.self)) {
        const removed = await this.registry.releaseMachine(node);
        await this.registry.forgetNode(node);
        this.log.warn(`node ${node} stopped beating: removed its ${removed} instance entries`);
      }
      await this.activator.reassert();
    } catch (err) {
      // RegistrySync reports an unreachable registry; nothing to add per beat.
      this.log.debug({ err: (err as Error).message }, 'heartbeat failed');
    }
  };
}
