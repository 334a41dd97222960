import { EJSON } from '../registry/bson.js';
import { IndexedRegistry } from '../registry/indexed-registry.js';
import type { ClaimResult, LoadReport, Registry } from '../registry/registry.js';
import type { InstanceAddress } from '../registry/types.js';

/** The registry's documents as they travel to workers: extended JSON keeps ObjectIds and dates. */
export function encodeDocs(docs: readonly { doc: unknown }[]): string {
  return EJSON.stringify(
    docs.map((d) => d.doc),
    { relaxed: true },
  );
}

/**
 * A worker's copy of the app table: the primary's documents, validated here into the same route
 * table (every lookup is in memory, as in the primary). It writes nothing: the registry's
 * instance entries are the primary's (activation asks it), except the release of a remote
 * instance this worker found unreachable, which it passes on.
 */
export class WorkerRegistry extends IndexedRegistry implements Registry {
  private last: LoadReport = { apps: 0, problems: [], changed: false };

  constructor(
    readonly kind: 'file' | 'mongo',
    private readonly passRelease: (appId: string, machine: InstanceAddress) => void,
  ) {
    super();
  }

  /** Takes the table the primary sent (encodeDocs). */
  take(encoded: string): LoadReport {
    const docs = (EJSON.parse(encoded, { relaxed: true }) as unknown[]).map((doc) => ({ doc }));
    this.last = this.apply(docs);
    return this.last;
  }

  async load(): Promise<LoadReport> {
    return { ...this.last, changed: false };
  }

  async allAddresses(): Promise<Map<string, InstanceAddress[]>> {
    return new Map();
  }

  async addressesOf(): Promise<InstanceAddress[]> {
    return [];
  }

  async claim(): Promise<ClaimResult> {
    throw new Error("a worker does not claim instances: arr's primary does");
  }

  async move(): Promise<boolean> {
    return false;
  }

  async noteDeploy(): Promise<void> {}

  async release(appId: string, machine: InstanceAddress): Promise<void> {
    this.passRelease(appId, machine);
  }

  async releaseMachine(): Promise<number> {
    return 0;
  }

  async close(): Promise<void> {}
}
