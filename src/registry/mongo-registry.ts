import { type Collection, type Document, MongoClient, type MongoClientOptions } from 'mongodb';
import { IndexedRegistry } from './indexed-registry.js';
import {
  type ClaimResult,
  type DeployNote,
  type FarmRegistry,
  type InstanceRecord,
  type LoadReport,
  type NodeRecord,
  UnknownAppError,
} from './registry.js';
import { type App, type InstanceAddress, sameMachine } from './types.js';
import { idOf } from './validate.js';

export const APPS_COLLECTION = 'apps';
/** One document per running instance: `{_id: "<app id>#<slot>", app, appRef, slot, host, port, since}`. */
export const INSTANCES_COLLECTION = 'instances';
/** One document per live arr node: `{_id: advertise address, beat, expires}`. */
export const NODES_COLLECTION = 'nodes';
const DEFAULT_DATABASE = 'arr';

export interface MongoRegistryOptions {
  /** How long an operation may wait for a reachable server before it fails. */
  serverSelectionTimeoutMS?: number;
  /** What the server's logs call this client. */
  appName?: string;
}

interface InstanceDoc {
  _id: string;
  /** The app's printable id. */
  app: string;
  /** The app's `_id` as stored, to update its document. */
  appRef: unknown;
  slot: number;
  host: string;
  port: number;
  since: Date;
  /** The app's revision the instance runs. */
  revision?: number;
  /** The last deploy that failed there (the instance runs an earlier revision). */
  deployFailed?: { revision: number; message: string; at: Date };
}

interface NodeDoc {
  _id: string;
  beat: Date;
  expires: Date;
}

/**
 * The farm's registry: the `apps` collection of the database named in the URL (`arr` when the
 * URL names none). Host lookups are answered from the index built at the last load.
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
  private readonly instances: Collection<InstanceDoc>;
  private readonly nodes: Collection<NodeDoc>;

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
    this.instances = db.collection<InstanceDoc>(INSTANCES_COLLECTION);
    this.nodes = db.collection<NodeDoc>(NODES_COLLECTION);
  }

  async load(): Promise<LoadReport> {
    const docs = await this.collection.find({}).toArray();
    return this.apply(docs.map((doc) => ({ doc })));
  }

  async allMachines(): Promise<Map<string, InstanceAddress[]>> {
    const all = new Map<string, InstanceAddress[]>();
    for (const d of await this.instances.find({}).sort({ app: 1, slot: 1 }).toArray()) {
      const list = all.get(d.app) ?? [];
      list.push({ host: d.host, port: d.port });
      all.set(d.app, list);
    }
    return all;
  }

  async beat(node: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    await this.nodes.updateOne(
      { _id: node },
      { $set: { beat: new Date(now), expires: new Date(now + ttlMs) } },
      { upsert: true },
    );
  }

  async deadNodes(self: string): Promise<string[]> {
    const records = await this.nodes.find({}).toArray();
    const now = Date.now();
    const known = new Set(records.map((r) => r._id));
    const dead = records.filter((r) => r._id !== self && r.expires.getTime() < now).map((r) => r._id);
    const hosts: string[] = await this.instances.distinct('host');
    for (const h of hosts) if (h !== self && !known.has(h)) dead.push(h);
    return [...new Set(dead)];
  }

  async nodeRecords(): Promise<NodeRecord[]> {
    const docs = await this.nodes.find({}).sort({ _id: 1 }).toArray();
    return docs.map((d) => ({ node: d._id, beat: d.beat.getTime(), expires: d.expires.getTime() }));
  }

  async instanceRecords(): Promise<InstanceRecord[]> {
    const docs = await this.instances.find({}).sort({ app: 1, slot: 1 }).toArray();
    return docs.map((d) => ({
      appId: d.app,
      host: d.host,
      port: d.port,
      since: d.since instanceof Date ? d.since.getTime() : 0,
      ...(d.revision !== undefined ? { revision: d.revision } : {}),
    }));
  }

  async forgetNode(node: string): Promise<void> {
    await this.nodes.deleteOne({ _id: node });
  }

  async machines(appId: string): Promise<InstanceAddress[]> {
    this.known(appId);
    return this.slotsOf(appId);
  }

  async claim(appId: string, machine: InstanceAddress): Promise<ClaimResult> {
    const app = this.known(appId);
    const doc = await this.collection.findOne({ _id: app.rawId } as Document, {
      projection: { instances: 1 },
    });
    if (!doc) throw new UnknownAppError(appId);
    // The cap as stored now, which may have been edited since the last load.
    const cap = doc.instances === undefined ? 1 : doc.instances;
    const taken = await this.instances.find({ app: appId }, { projection: { slot: 1 } }).toArray();
    let granted = false;
    if (typeof cap === 'number' && Number.isInteger(cap) && cap >= 1 && taken.length < cap) {
      const used = new Set(taken.map((t) => t.slot));
      for (let slot = 0; slot < cap && !granted; slot++) {
        if (used.has(slot)) continue;
        granted = await this.takeSlot({
          _id: `${appId}#${slot}`,
          app: appId,
          appRef: app.rawId,
          slot,
          host: machine.host,
          port: machine.port,
          since: new Date(),
        });
      }
    }
    if (granted) await this.mirror(appId, app.rawId);
    return { granted, machines: await this.slotsOf(appId) };
  }

  async move(appId: string, from: InstanceAddress, to: InstanceAddress): Promise<boolean> {
    const app = this.known(appId);
    const res = await this.instances.updateOne(
      { app: appId, host: from.host, port: from.port },
      { $set: { host: to.host, port: to.port, since: new Date() } },
    );
    if (res.matchedCount === 0) return false;
    await this.mirror(appId, app.rawId);
    return true;
  }

  async noteDeploy(appId: string, machine: InstanceAddress, note: DeployNote): Promise<void> {
    const slot = { app: appId, host: machine.host, port: machine.port };
    if (note.failed === undefined)
      await this.instances.updateOne(slot, {
        $set: { revision: note.revision },
        $unset: { deployFailed: '' },
      });
    else
      await this.instances.updateOne(slot, {
        $set: { deployFailed: { revision: note.revision, message: note.failed, at: new Date() } },
      });
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
    return Number(doc.revision);
  }

  /** The slots of an app with what they run: `arr restart --wait`, `arr apps`. */
  async slotNotes(
    appId: string,
  ): Promise<
    (InstanceAddress & { revision?: number; deployFailed?: { revision: number; message: string } })[]
  > {
    const docs = await this.instances.find({ app: appId }).sort({ slot: 1 }).toArray();
    return docs.map((d) => ({
      host: d.host,
      port: d.port,
      ...(d.revision !== undefined ? { revision: d.revision } : {}),
      ...(d.deployFailed ? { deployFailed: d.deployFailed } : {}),
    }));
  }

  async release(appId: string, machine: InstanceAddress): Promise<void> {
    const app = this.known(appId);
    const res = await this.instances.deleteMany({ app: appId, host: machine.host, port: machine.port });
    if (res.deletedCount > 0) await this.mirror(appId, app.rawId);
  }

  async releaseMachine(host: string): Promise<number> {
    const gone = await this.instances.find({ host }).toArray();
    if (gone.length === 0) return 0;
    const res = await this.instances.deleteMany({ host });
    const apps = new Map(gone.map((g) => [g.app, g.appRef]));
    for (const [appId, appRef] of apps) await this.mirror(appId, appRef);
    return res.deletedCount;
  }

  /** Inserts a slot document; false when another claim holds that slot already. */
  private async takeSlot(doc: InstanceDoc): Promise<boolean> {
    try {
      await this.instances.insertOne(doc);
      return true;
    } catch (err) {
      if ((err as { code?: number }).code === 11000) return false;
      throw err;
    }
  }

  private async slotsOf(appId: string): Promise<InstanceAddress[]> {
    const docs = await this.instances.find({ app: appId }).sort({ slot: 1 }).toArray();
    return docs.map((d) => ({ host: d.host, port: d.port }));
  }

  /**
   * Writes the app's slots into its `machines`. Writers may race, so each checks after its
   * write that the slots did not change meanwhile, and writes again when they did: the last
   * writer leaves the current list.
   */
  private async mirror(appId: string, appRef: unknown): Promise<void> {
    let machines = await this.slotsOf(appId);
    for (let attempt = 0; attempt < 3; attempt++) {
      await this.collection.updateOne({ _id: appRef } as Document, { $set: { machines } });
      const now = await this.slotsOf(appId);
      if (now.length === machines.length && now.every((m, i) => sameMachine(m, machines[i]!))) return;
      machines = now;
    }
  }

  /**
   * Calls `onChange` whenever an app or an instance entry changes, through change streams where
   * the server has them (a replica set); `onUnavailable` when it does not (a single server,
   * FerretDB), and the caller's polling is all there is. Returns a function that stops it.
   */
  watchChanges(onChange: () => void, onUnavailable: (why: string) => void): () => void {
    const streams = [this.collection.watch(), this.instances.watch()];
    let failed = false;
    for (const stream of streams) {
      stream.on('change', onChange);
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
    for (const doc of docs) {
      const res = await this.collection.replaceOne(
        { _id: doc._id },
        { ...doc, machines: [] },
        { upsert: true },
      );
      await this.instances.deleteMany({ app: idOf(doc._id) });
      if (res.upsertedCount > 0) inserted++;
      else updated++;
    }
    return { inserted, updated };
  }

  async close(): Promise<void> {
    await this.client.close();
  }

  private known(appId: string): App {
    const app = this.table.apps.get(appId);
    if (!app) throw new UnknownAppError(appId);
    return app;
  }
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
