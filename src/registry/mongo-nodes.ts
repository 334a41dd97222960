import type { Collection } from 'mongodb';
import type { NodeRecord } from './registry.js';

/** One document per live arr node: `{_id: advertise address, beat, expires}`. */
export const NODES_COLLECTION = 'nodes';
const CHORES_ID = 'chores';

interface NodeDoc {
  _id: string;
  beat: Date;
  expires: Date;
}

interface ChoresDoc {
  _id: string;
  node: string;
  until: Date;
}

/**
 * The nodes' liveness records, and the lease on the farm's chores: one node at a time sweeps
 * the dead nodes and audits the registry for the whole farm, so that a beat costs every other
 * node a write and a lookup by `_id` whatever the size of the farm. Writes are findAndModify
 * commands, as all of arr's (see `takeOnce`).
 */
export class NodeRecords {
  constructor(
    private readonly nodes: Collection<NodeDoc>,
    private readonly farm: Collection<ChoresDoc>,
  ) {}

  async beat(node: string, ttlMs: number): Promise<void> {
    const now = Date.now();
    await this.nodes.findOneAndUpdate(
      { _id: node },
      { $set: { beat: new Date(now), expires: new Date(now + ttlMs) } },
      { upsert: true },
    );
  }

  /**
   * Whether `node` holds the chores until `ttlMs` from now. A node that finds them unheld (or
   * their lease run out) takes them, and holds them from its next beat on, if it still finds
   * its name then: two nodes that take them at once (FerretDB v1 updates a document as a read
   * and a write) do not both do them; after an outage, when every lease has run out, neither do
   * all the nodes.
   */
  async holdChores(node: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    const lease = await this.farm.findOne({ _id: CHORES_ID });
    const live = lease !== null && lease.until.getTime() > now;
    if (live && lease.node !== node) return false;
    try {
      await this.farm.findOneAndUpdate(
        { _id: CHORES_ID },
        { $set: { node, until: new Date(now + ttlMs) } },
        { upsert: true },
      );
    } catch (err) {
      if ((err as { code?: number }).code === 11000) return false; // another node's upsert won
      throw err;
    }
    return live; // renewed; else taken, held from the next beat
  }

  /** Gives the chores up, if `node` holds them: a node that stops hands them over at once. */
  async releaseChores(node: string): Promise<void> {
    await this.farm.findOneAndDelete({ _id: CHORES_ID, node });
  }

  /**
   * Nodes other than `self` whose record expired, and those of `hosts` (the nodes named by
   * instance entries) that have no record at all: a node that died before its first beat.
   */
  async deadNodes(self: string, hosts: Iterable<string>): Promise<string[]> {
    const records = await this.nodes.find({}).toArray();
    const now = Date.now();
    const known = new Set(records.map((r) => r._id));
    const dead = records.filter((r) => r._id !== self && r.expires.getTime() < now).map((r) => r._id);
    for (const h of hosts) if (h !== self && !known.has(h)) dead.push(h);
    return [...new Set(dead)];
  }

  async forget(node: string): Promise<void> {
    await this.nodes.findOneAndDelete({ _id: node });
  }

  async records(): Promise<NodeRecord[]> {
    const docs = await this.nodes.find({}).sort({ _id: 1 }).toArray();
    return docs.map((d) => ({ node: d._id, beat: d.beat.getTime(), expires: d.expires.getTime() }));
  }
}
