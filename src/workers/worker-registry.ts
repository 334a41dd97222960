import { EJSON } from '../registry/bson.js';
import { IndexedRegistry } from '../registry/indexed-registry.js';
import type { ClaimResult, LoadReport, Registry } from '../registry/registry.js';
import type { InstanceAddress } from '../registry/types.js';

/**
 * The app table as it travels to workers: each document gets a number the first time it is
 * sent, and a table is sent as the numbers in order plus the documents a worker has not had (a
 * change of one app in the farm sends one document, not all of them; the farm's copy keeps the
 * objects of the documents that did not change). Extended JSON keeps ObjectIds and dates.
 */
export interface EncodedTable {
  /** Every document of the table, by number, in the registry's order. */
  order: number[];
  /** Those the worker has not had: [number, document]. */
  add: [number, unknown][];
}

export class TableSender {
  private readonly numbers = new WeakMap<object, number>();
  private next = 1;
  private current: { doc: unknown; n: number }[] = [];

  /** The table now in place, what a new worker is given whole. */
  full(): string {
    return EJSON.stringify(
      { order: this.current.map((d) => d.n), add: this.current.map((d) => [d.n, d.doc]) },
      { relaxed: true },
    );
  }

  /** A new table, as a change to the one sent before. */
  update(docs: readonly { doc: unknown }[]): string {
    const add: [number, unknown][] = [];
    const known = new Set(this.current.map((d) => d.n));
    this.current = docs.map(({ doc }) => {
      const n = this.numberOf(doc);
      if (!known.has(n)) add.push([n, doc]);
      return { doc, n };
    });
    return EJSON.stringify({ order: this.current.map((d) => d.n), add }, { relaxed: true });
  }

  private numberOf(doc: unknown): number {
    if (typeof doc !== 'object' || doc === null) return this.next++;
    let n = this.numbers.get(doc);
    if (n === undefined) {
      n = this.next++;
      this.numbers.set(doc, n);
    }
    return n;
  }
}

/**
 * A worker's copy of the app table: the primary's documents, validated here into the same route
 * table (every lookup is in memory, as in the primary). It writes nothing: the registry's
 * instance entries are the primary's (activation asks it), except the release of a remote
 * instance this worker found unreachable, which it passes on.
 */
export class WorkerRegistry extends IndexedRegistry implements Registry {
  private last: LoadReport = { apps: 0, problems: [], changed: false };
  /** The documents of the table in place, by the number the primary gave them. */
  private docs = new Map<number, unknown>();

  constructor(
    readonly kind: 'file' | 'mongo',
    private readonly passRelease: (appId: string, machine: InstanceAddress) => void,
  ) {
    super();
  }

  /** Takes the table the primary sent (TableSender): the documents it had are kept, objects and all. */
  take(encoded: string): LoadReport {
    const { order, add } = EJSON.parse(encoded, { relaxed: true }) as EncodedTable;
    const now = new Map(add);
    const docs = order.map((n) => {
      if (!now.has(n)) {
        if (!this.docs.has(n))
          throw new Error(`the primary sent app document ${n}, which this worker never had`);
        now.set(n, this.docs.get(n));
      }
      return { doc: now.get(n) };
    });
    this.docs = now;
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
