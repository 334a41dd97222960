import { hostname } from 'node:os';
import {
  type ChangeStreamDocument,
  type Collection,
  type Document,
  MongoClient,
  type MongoClientOptions,
} from 'mongodb';
import { IndexedRegistry } from './indexed-registry.js';
import { auditedThrough, auditRegistry, FARM_COLLECTION, writeCommands } from './mongo-audit.js';
import { type SlotDoc, StoreCopy } from './mongo-copy.js';
import { CHANGES_COLLECTION, type Change, ChangeJournal, takeOnce } from './mongo-journal.js';
import { NODES_COLLECTION, NodeRecords } from './mongo-nodes.js';
import {
  type AuditReport,
  type ClaimResult,
  type DeployNote,
  type FarmRegistry,
  type InstanceRecord,
  type LoadReport,
  type NodeRecord,
  type RefreshReport,
  type SlotNote,
  UnknownAppError,
} from './registry.js';
import { type App, type InstanceAddress, sameInstanceAddress } from './types.js';
import { idOf } from './validate.js';

export const APPS_COLLECTION = 'apps';
/** One document per running instance: `{_id: "<app id>#<slot>", app, appRef, slot, host, port, since}`. */
export const INSTANCES_COLLECTION = 'instances';
export { CHANGES_COLLECTION, FARM_COLLECTION, NODES_COLLECTION };

const DEFAULT_DATABASE = 'arr';
/**
 * An app's slots are read one lookup by `_id` each up to this many (the one query FerretDB v1
 * answers from an index); beyond, by one query on the app.
 */
const SLOT_LOOKUPS = 16;

export interface MongoRegistryOptions {
  /** How long an operation may wait for a reachable server before it fails. */
  serverSelectionTimeoutMS?: number;
  /** What the server's logs call this client. */
  appName?: string;
}

/**
 * The farm's registry: the `apps` collection of the database named in the URL (`arr` when the
 * URL names none). Host lookups are answered from the index built from this node's copy of the
 * documents, which follows the change journal (and change streams, where the server has them).
 *
 * The cap is held by slot documents in `instances`: an app with `instances: K` has slots 0 to
 * K-1, and taking one is an insert whose `_id` names the slot. A unique `_id` is enforced
 * atomically by every MongoDB-wire server, across connections and processes; a conditional
 * update is not (FerretDB v1 applies it as a read and a write). Each app's `machines` mirrors
 * its slots, for people and tools that read the `apps` collection.
 */
export class MongoRegistry extends IndexedRegistry implements FarmRegistry {
  readonly kind = 'mongo' as const;
  private readonly client: MongoClient;
  private readonly collection: Collection;
  private readonly instances: Collection<SlotDoc>;
  private readonly farm: Collection;
  private readonly journal: ChangeJournal;
  private readonly copy: StoreCopy;
  private readonly nodes: NodeRecords;
  /** The reads and applications of changes, one at a time. */
  private queue: Promise<unknown> = Promise.resolve();
  /** The server did not answer serverStatus with its command counters: `foreignWrites` cannot tell. */
  private serverStatusRefused = false;
  /** The highest cap a claim found stored, by app: slots up to it may be taken, loaded or not. */
  private readonly storedCaps = new Map<string, number>();

  constructor(
    readonly url: string,
    options: MongoRegistryOptions = {},
  ) {
    super();
    const clientOptions: MongoClientOptions = {
      // Short: while the database is unreachable, an activation fails fast (503) rather than
      // holding its request for the driver's default 30 s.
      serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 2000,
      appName: options.appName ?? 'arr',
    };
    this.client = new MongoClient(url, clientOptions);
    const db = this.client.db(databaseName(url));
    this.collection = db.collection(APPS_COLLECTION);
    this.instances = db.collection<SlotDoc>(INSTANCES_COLLECTION);
    this.farm = db.collection(FARM_COLLECTION);
    this.journal = new ChangeJournal(
      db.collection(CHANGES_COLLECTION),
      `${options.appName ?? 'arr'} on ${hostname()}, pid ${process.pid}`,
    );
    this.copy = new StoreCopy(this.collection, this.instances);
    this.nodes = new NodeRecords(db.collection(NODES_COLLECTION), db.collection(FARM_COLLECTION));
  }

  /** Reads every document of the registry. */
  load(): Promise<LoadReport> {
    return this.serially(async () => {
      await this.journal.start(); // first: what changes during the read is read again after
      this.copy.note({ apps: 'all', instances: 'all' });
      await this.copy.readPendingSlots();
      await this.copy.readPendingApps();
      return this.applyCopy();
    });
  }

  /**
   * Reads what changed since the last read: the journal's new entries (and what change streams
   * told), then the documents they name. Everything, when the journal cannot tell or when
   * `everything` asks for it.
   */
  refresh(everything = false): Promise<RefreshReport> {
    return this.serially(async () => {
      if (everything) this.copy.note({ apps: 'all', instances: 'all' });
      await this.catchUp();
      const report = (await this.copy.readPendingApps()) ? this.applyCopy() : this.unchanged();
      return { ...report, instancesChanged: this.copy.takeSlotsChanged() };
    });
  }

  /**
   * Every app's instances as the store has them now: the slots the journal named since the last
   * read are read again (app documents wait for the next `refresh`, which reports them).
   */
  allAddresses(): Promise<Map<string, InstanceAddress[]>> {
    return this.serially(async () => {
      await this.catchUp();
      return this.copy.addresses();
    });
  }

  /** Every app's instances as this node's copy has them (no I/O). */
  knownAddresses(): Map<string, InstanceAddress[]> {
    return this.copy.addresses();
  }

  beat(node: string, ttlMs: number): Promise<void> {
    return this.nodes.beat(node, ttlMs);
  }

  deadNodes(self: string): Promise<string[]> {
    return this.nodes.deadNodes(
      self,
      [...this.copy.slots.values()].map((s) => s.host),
    );
  }

  forgetNode(node: string): Promise<void> {
    return this.nodes.forget(node);
  }

  holdChores(node: string, ttlMs: number): Promise<boolean> {
    return this.nodes.holdChores(node, ttlMs);
  }

  releaseChores(node: string): Promise<void> {
    return this.nodes.releaseChores(node);
  }

  nodeRecords(): Promise<NodeRecord[]> {
    return this.nodes.records();
  }

  async instanceRecords(): Promise<InstanceRecord[]> {
    await this.allAddresses();
    return [...this.copy.slots.values()]
      .sort((a, b) => (a.app < b.app ? -1 : a.app > b.app ? 1 : a.slot - b.slot))
      .map((d) => ({
        appId: d.app,
        host: d.host,
        port: d.port,
        since: d.since instanceof Date ? d.since.getTime() : 0,
        ...(d.revision !== undefined ? { revision: d.revision } : {}),
      }));
  }

  /**
   * The server's insert, update and delete commands so far (see `writeCommands`); undefined when
   * the server does not tell (a user without the clusterMonitor role on MongoDB).
   */
  async foreignWrites(): Promise<number | undefined> {
    if (this.serverStatusRefused) return undefined;
    const count = await writeCommands(this.client.db('admin'));
    if (count === undefined) this.serverStatusRefused = true;
    return count;
  }

  /** How many app documents the store holds: a cheap count (collection statistics, no scan). */
  async countApps(): Promise<number> {
    const [stats] = await this.collection.aggregate([{ $collStats: { count: {} } }]).toArray();
    return Number(stats?.count ?? 0);
  }

  /** Looks for edits made outside arr (see `auditRegistry`). */
  audit(through?: number): Promise<AuditReport> {
    return auditRegistry(this.collection, this.instances, this.farm, this.journal, through);
  }

  auditedThrough(): Promise<number> {
    return auditedThrough(this.farm);
  }

  async addressesOf(appId: string): Promise<InstanceAddress[]> {
    return (await this.slotsOf(this.known(appId))).map(addressOf);
  }

  async claim(appId: string, machine: InstanceAddress): Promise<ClaimResult> {
    const app = this.known(appId);
    const doc = await this.collection.findOne({ _id: app.rawId } as Document, {
      projection: { instances: 1 },
    });
    if (!doc) throw new UnknownAppError(appId);
    // The cap as stored now, which may have been edited since the last load.
    const cap = doc.instances === undefined ? 1 : doc.instances;
    const valid = typeof cap === 'number' && Number.isInteger(cap) && cap >= 1;
    if (valid) this.storedCaps.set(appId, Math.max(cap, this.storedCaps.get(appId) ?? 0));
    const taken = await this.slotsOf(app);
    let granted: string | undefined;
    if (valid && taken.length < cap) {
      const used = new Set(taken.map((t) => t.slot));
      for (let slot = 0; slot < cap && !granted; slot++) {
        if (used.has(slot)) continue;
        granted = await this.takeSlot({
          _id: slotId(appId, slot),
          app: appId,
          appRef: app.rawId,
          slot,
          host: machine.host,
          port: machine.port,
          since: new Date(),
        });
      }
    }
    // Refused: the slots as they are now, with the claims that won meanwhile.
    if (!granted)
      return {
        granted: false,
        machines: (valid && taken.length < cap ? await this.slotsOf(app) : taken).map(addressOf),
      };
    await this.journal.append({ instances: [granted] });
    return { granted: true, machines: await this.mirror(app) };
  }

  async move(appId: string, from: InstanceAddress, to: InstanceAddress): Promise<boolean> {
    const app = this.known(appId);
    const moved: string[] = [];
    for (const slot of await this.slotsAt(app, from)) {
      const res = await this.instances.findOneAndUpdate(
        { _id: slot._id, host: from.host, port: from.port },
        { $set: { host: to.host, port: to.port, since: new Date() } },
      );
      if (res) moved.push(slot._id);
    }
    if (moved.length === 0) return false;
    await this.journal.append({ instances: moved });
    await this.mirror(app);
    return true;
  }

  async noteDeploy(appId: string, machine: InstanceAddress, note: DeployNote): Promise<void> {
    const noted: string[] = [];
    for (const slot of await this.slotsAt(this.known(appId), machine)) {
      const filter = { _id: slot._id, host: machine.host, port: machine.port };
      const update =
        note.failed === undefined
          ? { $set: { revision: note.revision }, $unset: { deployFailed: '' as const } }
          : { $set: { deployFailed: { revision: note.revision, message: note.failed, at: new Date() } } };
      if (await this.instances.findOneAndUpdate(filter, update)) noted.push(slot._id);
    }
    await this.journal.append({ instances: noted });
  }

  /** `arr restart`: adds 1 to the app's `revision`; every node replaces its instances. Returns the new revision. */
  async bumpRevision(appId: string): Promise<number> {
    const app = this.known(appId);
    const doc = await this.collection.findOneAndUpdate(
      { _id: app.rawId } as Document,
      { $inc: { revision: 1 } },
      { returnDocument: 'after' },
    );
    if (!doc) throw new UnknownAppError(appId);
    await this.journal.append({ apps: [app.rawId] });
    return Number(doc.revision);
  }

  /** The slots of an app with what they run: `arr restart --wait`, `arr apps`. */
  async slotNotes(appId: string): Promise<SlotNote[]> {
    const app = this.table.apps.get(appId);
    const docs = app ? await this.slotsOf(app) : await this.instances.find({ app: appId }).toArray();
    return docs.map((d) => ({
      ...addressOf(d),
      ...(d.revision !== undefined ? { revision: d.revision } : {}),
      ...(d.deployFailed ? { deployFailed: d.deployFailed } : {}),
    }));
  }

  async release(appId: string, machine: InstanceAddress): Promise<void> {
    const app = this.known(appId);
    const released: string[] = [];
    for (const slot of await this.slotsAt(app, machine)) {
      const gone = await this.instances.findOneAndDelete({
        _id: slot._id,
        host: machine.host,
        port: machine.port,
      });
      if (gone) released.push(slot._id);
    }
    if (released.length === 0) return;
    await this.journal.append({ instances: released });
    await this.mirror(app);
  }

  async releaseMachine(host: string): Promise<number> {
    const gone: SlotDoc[] = [];
    for (const slot of await this.instances.find({ host }).toArray())
      if (await this.instances.findOneAndDelete({ _id: slot._id, host })) gone.push(slot);
    if (gone.length === 0) return 0;
    await this.journal.append({ instances: gone.map((g) => g._id) });
    for (const g of new Map(gone.map((g) => [g.app, g])).values()) await this.mirrorSlots(g.app, g.appRef);
    return gone.length;
  }

  /**
   * Calls `onChange` whenever an app or an instance entry changes, through change streams where
   * the server has them (a replica set): the documents they name are read at the next `refresh`,
   * as the journal's are. `onUnavailable` when it does not (a single server, FerretDB): the
   * caller's polling is all there is. Returns a function that stops it.
   */
  watchChanges(onChange: () => void, onUnavailable: (why: string) => void): () => void {
    const streams = [
      this.collection.watch().on('change', (e: ChangeStreamDocument) => {
        this.copy.note({ apps: changedIds(e) });
        onChange();
      }),
      this.instances.watch().on('change', (e: ChangeStreamDocument<SlotDoc>) => {
        const ids = changedIds(e);
        this.copy.note({ instances: ids === 'all' ? 'all' : ids.map(String) });
        onChange();
      }),
    ];
    let failed = false;
    for (const stream of streams) {
      stream.on('error', (err: Error) => {
        if (failed) return;
        failed = true;
        for (const s of streams) void s.close().catch(() => {});
        onUnavailable(err.message);
      });
    }
    return () => {
      for (const s of streams) void s.close().catch(() => {});
    };
  }

  /**
   * Writes app documents as given (`arr import`): each replaces the stored one with its `_id`,
   * or is inserted, with `machines` reset to `[]` and the app's instance slots cleared. The
   * documents must have been validated by the caller.
   */
  async upsertApps(docs: Document[]): Promise<{ inserted: number; updated: number }> {
    let inserted = 0;
    let updated = 0;
    const slots = await this.instances.find({}, { projection: { _id: 1, app: 1 } }).toArray();
    const cleared: string[] = [];
    for (const doc of docs) {
      const before = await this.collection.findOneAndReplace(
        { _id: doc._id },
        { ...doc, machines: [] },
        { upsert: true },
      );
      const id = idOf(doc._id);
      for (const slot of slots.filter((s) => s.app === id))
        if (await this.instances.findOneAndDelete({ _id: slot._id })) cleared.push(slot._id);
      if (before) updated++;
      else inserted++;
    }
    await this.journal.append({ apps: docs.map((d) => d._id), instances: cleared });
    return { inserted, updated };
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  /** Runs `task` after those queued before it (reads of changes must not interleave). */
  private serially<T>(task: () => Promise<T>): Promise<T> {
    const run = this.queue.then(task, task);
    this.queue = run.catch(() => {});
    return run;
  }

  /** Takes in the journal's new entries and reads the slots they name; everything when it cannot tell. */
  private async catchUp(): Promise<void> {
    if (!(await this.journal.read((change: Change) => this.copy.note(change)))) {
      await this.journal.start();
      this.copy.note({ apps: 'all', instances: 'all' });
    }
    await this.copy.readPendingSlots();
  }

  private applyCopy(): LoadReport {
    return this.apply([...this.copy.apps.values()].map((doc) => ({ doc })));
  }

  private unchanged(): LoadReport {
    return { apps: this.table.apps.size, problems: [], changed: false };
  }

  /** Creates a slot document; its `_id`, or undefined when another claim holds that slot already. */
  private async takeSlot({ _id, ...fields }: SlotDoc): Promise<string | undefined> {
    return (await takeOnce(this.instances, _id, fields)) ? _id : undefined;
  }

  /**
   * The app's slot documents as stored now, in slot order: slots 0 to the highest of its cap (as
   * loaded, or as a claim found it stored) and of the slots this node read, a lookup by `_id` each.
   */
  private async slotsOf(app: App): Promise<SlotDoc[]> {
    const count = Math.max(app.instances, this.storedCaps.get(app.id) ?? 0, this.copy.maxSlot(app.id) + 1);
    if (count > SLOT_LOOKUPS) return this.instances.find({ app: app.id }).sort({ slot: 1 }).toArray();
    const docs = await Promise.all(
      Array.from({ length: count }, (_, slot) => this.instances.findOne({ _id: slotId(app.id, slot) })),
    );
    return docs.filter((d): d is SlotDoc => d !== null);
  }

  /** The app's slots held by the instance at `machine`. */
  private async slotsAt(app: App, machine: InstanceAddress): Promise<SlotDoc[]> {
    return (await this.slotsOf(app)).filter((s) => sameInstanceAddress(addressOf(s), machine));
  }

  private mirror(app: App): Promise<InstanceAddress[]> {
    return this.mirrorSlots(app.id, app.rawId);
  }

  /**
   * Writes the app's slots into its `machines`, and returns them. Writers may race, so each
   * checks after its write that the slots did not change meanwhile, and writes again when they
   * did: the last writer leaves the current list.
   */
  private async mirrorSlots(appId: string, appRef: unknown): Promise<InstanceAddress[]> {
    const app = this.table.apps.get(appId);
    const read = async () =>
      (app
        ? await this.slotsOf(app)
        : await this.instances.find({ app: appId }).sort({ slot: 1 }).toArray()
      ).map(addressOf);
    let machines = await read();
    for (let attempt = 0; attempt < 3; attempt++) {
      await this.collection.findOneAndUpdate({ _id: appRef } as Document, { $set: { machines } });
      const now = await read();
      if (now.length === machines.length && now.every((m, i) => sameInstanceAddress(m, machines[i]!)))
        return now;
      machines = now;
    }
    return machines;
  }

  private known(appId: string): App {
    const app = this.table.apps.get(appId);
    if (!app) throw new UnknownAppError(appId);
    return app;
  }
}

const slotId = (appId: string, slot: number) => `${appId}#${slot}`;
const addressOf = (d: SlotDoc): InstanceAddress => ({ host: d.host, port: d.port });

/** The `_id`s a change stream event names, or 'all' for an event on the whole collection. */
function changedIds(e: ChangeStreamDocument<Document>): unknown[] | 'all' {
  return 'documentKey' in e && e.documentKey ? [(e.documentKey as { _id: unknown })._id] : 'all';
}

/** The database named in a MongoDB URL's path, or `arr`. */
export function databaseName(url: string): string {
  const match = /^mongodb(?:\+srv)?:\/\/[^/]*\/([^?]*)/.exec(url);
  const name = match?.[1] ? decodeURIComponent(match[1]) : '';
  return name || DEFAULT_DATABASE;
}

/** A MongoDB URL fit for a log line: credentials replaced. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}
