import type { App, InstanceAddress, Problem, Route } from './types.js';

export interface LoadReport {
  /** How many apps are served after the load. */
  apps: number;
  /** Documents or lines that were skipped, and host names that were not given. */
  problems: Problem[];
  /** Whether the apps differ from the previous load's (always true for the first). */
  changed: boolean;
}

/** What an instance runs, or which deploy failed there. */
export interface DeployNote {
  revision: number;
  /** Why the deploy of `revision` failed (the instance runs an earlier version). */
  failed?: string;
}

export interface ClaimResult {
  granted: boolean;
  /** The app's instances as the registry knows them after the attempt. */
  machines: InstanceAddress[];
}

/**
 * Where the router learns which app owns a host name and records where instances run.
 * Lookups (`route`, `app`) are answered from memory; the asynchronous operations touch the
 * backing store and are used on the activation path only.
 */
export interface Registry {
  readonly kind: 'file' | 'mongo';
  /** Reads every app from the store and replaces the in-memory index. */
  load(): Promise<LoadReport>;
  route(host: string): Route | undefined;
  app(id: string): App | undefined;
  apps(): Iterable<App>;
  /** Every host that has its own certificate. */
  tlsRoutes(): Iterable<Route>;
  /** What the last load skipped or ignored (documents, fields, host names), for the dashboard. */
  problems(): readonly Problem[];
  /** Every app's instances as the store has them now, by app id. */
  allMachines(): Promise<Map<string, InstanceAddress[]>>;
  /** The app's instances as the store has them now. */
  machines(appId: string): Promise<InstanceAddress[]>;
  /**
   * Records a new instance if, and only if, the app has fewer than `instances` of them; atomic
   * against every other caller, in this process or another.
   */
  claim(appId: string, machine: InstanceAddress): Promise<ClaimResult>;
  /**
   * Points the entry of the instance at `from` to `to` (a rolling replacement: the slot, and
   * the cap it holds, moves to the new instance). False when there was no such entry.
   */
  move(appId: string, from: InstanceAddress, to: InstanceAddress): Promise<boolean>;
  /**
   * Records what the instance at `machine` runs (its app's revision), or that a deploy of a
   * revision failed there (the instance runs the previous one): for `arr restart --wait` and
   * `arr apps`. The file registry keeps none (arr's state file has it).
   */
  noteDeploy(appId: string, machine: InstanceAddress, note: DeployNote): Promise<void>;
  /** Removes one instance. */
  release(appId: string, machine: InstanceAddress): Promise<void>;
  /** Removes every instance recorded for one machine address; returns how many were removed. */
  releaseMachine(host: string): Promise<number>;
  close(): Promise<void>;
}

/**
 * The operations of a Registry that touch its store, by method name: the one list that metrics
 * count failures of (src/ops/metrics/instrumented-registry.ts) and label them by.
 */
export const STORE_OPERATIONS = [
  'load',
  'allMachines',
  'machines',
  'claim',
  'move',
  'noteDeploy',
  'release',
  'releaseMachine',
] as const satisfies readonly (keyof Registry)[];

/** The same for a farm's node liveness. */
export const LIVENESS_OPERATIONS = [
  'beat',
  'deadNodes',
  'forgetNode',
] as const satisfies readonly (keyof NodeLiveness)[];

/** A registry operation that touches the store. */
export type StoreOperation = (typeof STORE_OPERATIONS)[number] | (typeof LIVENESS_OPERATIONS)[number];

/**
 * Liveness records of the nodes of a farm, kept in the shared store: each node beats, and the
 * entries of a node that stopped beating can be removed by any other.
 */
export interface NodeLiveness {
  /** Records that `node` is alive until `ttlMs` from now (by this machine's clock). */
  beat(node: string, ttlMs: number): Promise<void>;
  /**
   * Nodes other than `self` whose record has expired, and hosts that have instance entries but
   * no record at all (a node that died before its first beat).
   */
  deadNodes(self: string): Promise<string[]>;
  forgetNode(node: string): Promise<void>;
}

/** A node of the farm as its liveness record has it (the dashboard). */
export interface NodeRecord {
  node: string;
  /** Its last beat, and when it is taken for dead without another (ms since the epoch). */
  beat: number;
  expires: number;
}

/** An instance entry of the farm (the dashboard): which node runs which app, on which port, since when. */
export interface InstanceRecord {
  appId: string;
  host: string;
  port: number;
  since: number;
  revision?: number;
}

/** What the farm's store tells of its nodes and instances, read for the dashboard (off the request path). */
export interface FarmRecords {
  nodeRecords(): Promise<NodeRecord[]>;
  instanceRecords(): Promise<InstanceRecord[]>;
}

/** The farm's shared registry: instances, node liveness, and news of changes. */
export interface FarmRegistry extends Registry, NodeLiveness, FarmRecords {
  readonly kind: 'mongo';
  /**
   * Calls `onChange` whenever an app or an instance entry changes, where the store can tell
   * (`onUnavailable` when it cannot: polling is all there is). Returns a function that stops it.
   */
  watchChanges(onChange: () => void, onUnavailable: (why: string) => void): () => void;
}

export class UnknownAppError extends Error {
  constructor(id: string) {
    super(`no app with id ${id}`);
  }
}
