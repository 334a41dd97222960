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
  allAddresses(): Promise<Map<string, InstanceAddress[]>>;
  /** The app's instances as the store has them now. */
  addressesOf(appId: string): Promise<InstanceAddress[]>;
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
 * count failures of (src/ops/metrics/instrumented-registry.ts) and label them by. Two labels
 * keep the names their methods had (`allAddresses` is `allMachines`, `addressesOf` is
 * `machines`): alerts and dashboards on them go on matching.
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
] as const satisfies readonly (keyof Registry | 'allMachines' | 'machines')[];

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
   * Nodes other than `self` whose record has expired, and hosts that have instance entries (as
   * this node last read them) but no record at all (a node that died before its first beat).
   */
  deadNodes(self: string): Promise<string[]>;
  forgetNode(node: string): Promise<void>;
}

/** What a `refresh` of the farm's registry found. */
export interface RefreshReport extends LoadReport {
  /** Whether instance entries changed since the last refresh (read then, or by `allAddresses` since). */
  instancesChanged: boolean;
}

/** An instance entry with what it runs: `arr restart --wait`, `arr apps`. */
export interface SlotNote extends InstanceAddress {
  revision?: number;
  /** The last deploy that failed there (the instance runs an earlier revision). */
  deployFailed?: { revision: number; message: string };
}

/** What an audit of the farm's registry read and found (see `FarmRegistry.audit`). */
export interface AuditReport {
  /** App and slot documents read. */
  apps: number;
  instances: number;
  /** Documents changed outside arr since the last audit: every node reads them again. */
  changed: number;
  /** No earlier audit to compare with: every node reads everything again. */
  first: boolean;
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

/**
 * The farm's chores, done by one node at a time for all: sweeping the nodes that stopped
 * beating, and auditing the registry for edits made outside arr.
 */
export interface FarmChores {
  /**
   * Whether `node` holds the chores for the next `ttlMs`: it takes them when nobody holds them
   * or their holder stopped renewing them (and holds them from its next call on, when no other
   * node took them meanwhile), and renews them while it holds them.
   */
  holdChores(node: string, ttlMs: number): Promise<boolean>;
  /** Hands the chores over at once, if `node` holds them (a node that stops). */
  releaseChores(node: string): Promise<void>;
  /**
   * A number that moves whenever something other than arr writes to the store's server (arr
   * writes in a way that does not move it), read cheaply; undefined when the server does not tell.
   */
  foreignWrites(): Promise<number | undefined>;
  /** How many app documents the store holds, counted cheaply (no read of the documents). */
  countApps(): Promise<number>;
  /**
   * Reads every document and tells every node to read again those that changed since the last
   * audit, by whatever wrote them: edits made outside arr reach the farm this way. `through`:
   * the `foreignWrites` count read before the audit began, which it then records as audited.
   */
  audit(through?: number): Promise<AuditReport>;
  /**
   * The highest `foreignWrites` count an audit recorded (0: none yet): once it reaches the count
   * a node read, the writes that count includes are in the change journal.
   */
  auditedThrough(): Promise<number>;
}

/** The farm's shared registry: instances, node liveness, and news of changes. */
export interface FarmRegistry extends Registry, NodeLiveness, FarmRecords, FarmChores {
  readonly kind: 'mongo';
  /**
   * Reads what changed since the last read (every node's writes, what change streams told, what
   * an audit found), and only that; everything when it cannot tell, or when asked to.
   */
  refresh(everything?: boolean): Promise<RefreshReport>;
  /** Every app's instances as this node read them last (no I/O). */
  knownAddresses(): Map<string, InstanceAddress[]>;
  /**
   * Calls `onChange` whenever an app or an instance entry changes, where the store can tell
   * (`onUnavailable` when it cannot: polling is all there is). Returns a function that stops it.
   */
  watchChanges(onChange: () => void, onUnavailable: (why: string) => void): () => void;
  /** `arr restart`: adds 1 to the app's `revision`; every node replaces its instances. Returns the new revision. */
  bumpRevision(appId: string): Promise<number>;
  /** The app's instance entries with what they run, as stored now. */
  slotNotes(appId: string): Promise<SlotNote[]>;
}

export class UnknownAppError extends Error {
  constructor(id: string) {
    super(`no app with id ${id}`);
  }
}
