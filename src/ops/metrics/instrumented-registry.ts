import {
  type AuditReport,
  type ClaimResult,
  type DeployNote,
  type FarmRegistry,
  type InstanceRecord,
  LIVENESS_OPERATIONS,
  type LoadReport,
  type NodeRecord,
  type RefreshReport,
  type Registry,
  type SlotNote,
  STORE_OPERATIONS,
} from '../../registry/registry.js';
import type { App, InstanceAddress, Problem, Route } from '../../registry/types.js';
import type { Metrics, RegistryOperation } from './metrics.js';

/**
 * A registry whose store operations are counted in the metrics (failures, and whether the last
 * load worked), whoever calls them: polling, heartbeats, activation, clean-up. Lookups answered
 * from memory (`route`, `app`, `apps`) pass straight through; the router does not even use
 * this wrapper for them.
 */
export class InstrumentedRegistry<R extends Registry> implements Registry {
  readonly kind: R['kind'];

  constructor(
    protected readonly inner: R,
    protected readonly metrics: Metrics,
  ) {
    this.kind = inner.kind;
    metrics.registryOperations(STORE_OPERATIONS);
  }

  protected count<T>(operation: RegistryOperation, result: Promise<T>): Promise<T> {
    return result.then(
      (value) => {
        this.metrics.registryOperation(operation, true);
        return value;
      },
      (err: unknown) => {
        this.metrics.registryOperation(operation, false);
        throw err;
      },
    );
  }

  load(): Promise<LoadReport> {
    return this.count('load', this.inner.load());
  }
  route(host: string): Route | undefined {
    return this.inner.route(host);
  }
  problems(): readonly Problem[] {
    return this.inner.problems();
  }
  app(id: string): App | undefined {
    return this.inner.app(id);
  }
  apps(): Iterable<App> {
    return this.inner.apps();
  }
  tlsRoutes(): Iterable<Route> {
    return this.inner.tlsRoutes();
  }
  allAddresses(): Promise<Map<string, InstanceAddress[]>> {
    return this.count('allMachines', this.inner.allAddresses());
  }
  addressesOf(appId: string): Promise<InstanceAddress[]> {
    return this.count('machines', this.inner.addressesOf(appId));
  }
  claim(appId: string, machine: InstanceAddress): Promise<ClaimResult> {
    return this.count('claim', this.inner.claim(appId, machine));
  }
  move(appId: string, from: InstanceAddress, to: InstanceAddress): Promise<boolean> {
    return this.count('move', this.inner.move(appId, from, to));
  }
  noteDeploy(appId: string, machine: InstanceAddress, note: DeployNote): Promise<void> {
    return this.count('noteDeploy', this.inner.noteDeploy(appId, machine, note));
  }
  release(appId: string, machine: InstanceAddress): Promise<void> {
    return this.count('release', this.inner.release(appId, machine));
  }
  releaseMachine(host: string): Promise<number> {
    return this.count('releaseMachine', this.inner.releaseMachine(host));
  }
  close(): Promise<void> {
    return this.inner.close();
  }
}

/**
 * The same for the farm's registry, with node liveness counted too. The farm's reads are
 * counted under the operation they stand for: a refresh, the apps count, the server's write
 * count and an audit are loads (the health check reads whether the last one worked); taking
 * the chores is part of a beat, giving them up part of forgetting a node.
 */
export class InstrumentedFarmRegistry extends InstrumentedRegistry<FarmRegistry> implements FarmRegistry {
  declare readonly kind: 'mongo';

  constructor(inner: FarmRegistry, metrics: Metrics) {
    super(inner, metrics);
    metrics.registryOperations(LIVENESS_OPERATIONS);
  }

  beat(node: string, ttlMs: number): Promise<void> {
    return this.count('beat', this.inner.beat(node, ttlMs));
  }
  deadNodes(self: string): Promise<string[]> {
    return this.count('deadNodes', this.inner.deadNodes(self));
  }
  forgetNode(node: string): Promise<void> {
    return this.count('forgetNode', this.inner.forgetNode(node));
  }
  nodeRecords(): Promise<NodeRecord[]> {
    return this.inner.nodeRecords();
  }
  instanceRecords(): Promise<InstanceRecord[]> {
    return this.inner.instanceRecords();
  }
  watchChanges(onChange: () => void, onUnavailable: (why: string) => void): () => void {
    return this.inner.watchChanges(onChange, onUnavailable);
  }
  refresh(everything?: boolean): Promise<RefreshReport> {
    return this.count('load', this.inner.refresh(everything));
  }
  knownAddresses(): Map<string, InstanceAddress[]> {
    return this.inner.knownAddresses();
  }
  holdChores(node: string, ttlMs: number): Promise<boolean> {
    return this.count('beat', this.inner.holdChores(node, ttlMs));
  }
  releaseChores(node: string): Promise<void> {
    return this.count('forgetNode', this.inner.releaseChores(node));
  }
  foreignWrites(): Promise<number | undefined> {
    return this.count('load', this.inner.foreignWrites());
  }
  countApps(): Promise<number> {
    return this.count('load', this.inner.countApps());
  }
  audit(through?: number): Promise<AuditReport> {
    return this.count('load', this.inner.audit(through));
  }
  auditedThrough(): Promise<number> {
    return this.count('load', this.inner.auditedThrough());
  }
  bumpRevision(appId: string): Promise<number> {
    return this.inner.bumpRevision(appId);
  }
  slotNotes(appId: string): Promise<SlotNote[]> {
    return this.inner.slotNotes(appId);
  }
}
