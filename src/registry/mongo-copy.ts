import { BSON, type Collection, type Document, ObjectId } from 'mongodb';
import type { Change } from './mongo-journal.js';
import type { InstanceAddress } from './types.js';

/** One document of `instances`: a slot of an app, held by one instance. */
export interface SlotDoc {
  /** `<app id>#<slot>`. */
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

/** A map key for an `_id` of any type (the number 5 and the string "5" are two documents). */
export const keyOf = (id: unknown): string => BSON.EJSON.stringify(id, { relaxed: true });
export const idOfKey = (key: string): unknown => BSON.EJSON.parse(key, { relaxed: true });

/** Documents to read again: some, by key, or all. */
class Pending {
  all = false;
  keys = new Set<string>();

  add(keys: Iterable<string> | 'all' | undefined): void {
    if (keys === 'all') this.all = true;
    else if (keys) for (const k of keys) this.keys.add(k);
  }

  get empty(): boolean {
    return !this.all && this.keys.size === 0;
  }

  /** Hands what is pending to `read`; if it fails, that stays pending. Whether anything was. */
  async read(read: (taken: { all: boolean; keys: string[] }) => Promise<void>): Promise<boolean> {
    if (this.empty) return false;
    const taken = { all: this.all, keys: [...this.keys] };
    this.all = false;
    this.keys.clear();
    try {
      await read(taken);
    } catch (err) {
      this.add(taken.all ? 'all' : taken.keys);
      throw err;
    }
    return true;
  }
}

/**
 * What this node knows of the registry's documents: the app documents and the slot documents,
 * by key. Changes are noted (from the change journal, a change stream, or a full read) and
 * the documents they name are read again, by `_id`: one way of applying a change, however it
 * was learned.
 */
export class StoreCopy {
  readonly apps = new Map<string, Document>();
  readonly slots = new Map<string, SlotDoc>();
  private readonly slotsByApp = new Map<string, Set<string>>();
  private readonly pendingApps = new Pending();
  private readonly pendingSlots = new Pending();
  private slotsChanged = false;

  constructor(
    private readonly appsCollection: Collection,
    private readonly slotsCollection: Collection<SlotDoc>,
  ) {}

  note(change: Change): void {
    this.pendingApps.add(change.apps === 'all' ? 'all' : change.apps?.map(keyOf));
    this.pendingSlots.add(change.instances);
  }

  /** Reads the slot documents that changes named; whether any was read. */
  async readPendingSlots(): Promise<boolean> {
    const read = await this.pendingSlots.read(async ({ all, keys }) => {
      if (all) return this.replaceSlots(await this.slotsCollection.find({}).toArray());
      const docs = await Promise.all(keys.map((id) => this.slotsCollection.findOne({ _id: id })));
      for (const [i, id] of keys.entries()) this.setSlot(id, docs[i] ?? undefined);
    });
    if (read) this.slotsChanged = true;
    return read;
  }

  /** Reads the app documents that changes named; whether any was read. */
  readPendingApps(): Promise<boolean> {
    return this.pendingApps.read(async ({ all, keys }) => {
      if (all) return this.replaceApps(await this.appsCollection.find({}).toArray());
      for (const [key, doc] of await this.appsByKey(keys)) this.setApp(key, doc);
    });
  }

  /** Whether slot documents were read since the last call. */
  takeSlotsChanged(): boolean {
    const changed = this.slotsChanged;
    this.slotsChanged = false;
    return changed;
  }

  /** Every app's instances as read, by app id, in slot order. */
  addresses(): Map<string, InstanceAddress[]> {
    const all = new Map<string, InstanceAddress[]>();
    for (const [app, ids] of this.slotsByApp) {
      const docs = [...ids].map((id) => this.slots.get(id)!).sort((a, b) => a.slot - b.slot);
      all.set(
        app,
        docs.map((d) => ({ host: d.host, port: d.port })),
      );
    }
    return all;
  }

  /** The highest slot number of the app as read (-1: none). */
  maxSlot(appId: string): number {
    let max = -1;
    for (const id of this.slotsByApp.get(appId) ?? []) max = Math.max(max, this.slots.get(id)!.slot);
    return max;
  }

  /**
   * The documents with these keys, undefined where there is none. A string or ObjectId `_id` is
   * a lookup of its own (the one filter FerretDB v1 answers from its index); others share one
   * query.
   */
  private async appsByKey(keys: string[]): Promise<Map<string, Document | undefined>> {
    const ids = keys.map(idOfKey);
    const indexed = ids.filter((id) => typeof id === 'string' || id instanceof ObjectId);
    const others = ids.filter((id) => !(typeof id === 'string' || id instanceof ObjectId));
    const found = await Promise.all([
      ...indexed.map((id) => this.appsCollection.findOne({ _id: id } as Document)),
      others.length > 0 ? this.appsCollection.find({ _id: { $in: others } } as Document).toArray() : [],
    ]);
    const byKey = new Map<string, Document | undefined>(keys.map((k) => [k, undefined]));
    for (const doc of found.flat()) if (doc) byKey.set(keyOf(doc._id), doc);
    return byKey;
  }

  private replaceApps(docs: Document[]): void {
    this.apps.clear();
    for (const doc of docs) this.apps.set(keyOf(doc._id), doc);
  }

  private setApp(key: string, doc: Document | undefined): void {
    if (doc) this.apps.set(key, doc);
    else this.apps.delete(key);
  }

  private replaceSlots(docs: SlotDoc[]): void {
    this.slots.clear();
    this.slotsByApp.clear();
    for (const doc of docs) this.setSlot(doc._id, doc);
    this.slotsChanged = true;
  }

  private setSlot(id: string, doc: SlotDoc | undefined): void {
    const before = this.slots.get(id);
    if (before) {
      const ids = this.slotsByApp.get(before.app);
      ids?.delete(id);
      if (ids?.size === 0) this.slotsByApp.delete(before.app);
    }
    if (!doc) {
      this.slots.delete(id);
      return;
    }
    this.slots.set(id, doc);
    const ids = this.slotsByApp.get(doc.app) ?? new Set<string>();
    ids.add(id);
    this.slotsByApp.set(doc.app, ids);
  }
}
