import { type Collection, type Document, MongoClient, type MongoClientOptions } from 'mongodb';
import { buildRouteTable } from './load.js';
import { type ClaimResult, type LoadReport, type Registry, UnknownAppError } from './registry.js';
import { RouteTable } from './route-table.js';
import type { App, Machine, Route } from './types.js';
import { parseMachines } from './validate.js';

export const APPS_COLLECTION = 'apps';
const DEFAULT_DATABASE = 'arr';
/** Attempts of a claim when the document changed under it (a slot freed, the cap edited). */
const CLAIM_ATTEMPTS = 4;

export interface MongoRegistryOptions {
  /** How long an operation may wait for a reachable server before it fails. */
  serverSelectionTimeoutMS?: number;
}

/**
 * The farm's registry: the `apps` collection of the database named in the URL (`arr` when the
 * URL names none). Host lookups are answered from the index built at the last load; claims
 * are single conditional updates, so the cap holds across every arr process of the farm.
 */
export class MongoRegistry implements Registry {
  readonly kind = 'mongo';
  private table = new RouteTable([]);
  private readonly client: MongoClient;
  private readonly collection: Collection;

  constructor(url: string, options: MongoRegistryOptions = {}) {
    const clientOptions: MongoClientOptions = {
      serverSelectionTimeoutMS: options.serverSelectionTimeoutMS ?? 5000,
      appName: 'arr',
    };
    this.client = new MongoClient(url, clientOptions);
    this.collection = this.client.db(databaseName(url)).collection(APPS_COLLECTION);
  }

  async load(): Promise<LoadReport> {
    const docs = await this.collection.find({}).toArray();
    const { table, problems } = buildRouteTable(docs.map((doc) => ({ doc })));
    this.table = table;
    return { apps: table.apps.size, problems };
  }

  route(host: string): Route | undefined {
    return this.table.route(host);
  }

  app(id: string): App | undefined {
    return this.table.apps.get(id);
  }

  apps(): Iterable<App> {
    return this.table.apps.values();
  }

  tlsRoutes(): Iterable<Route> {
    return this.table.tlsRoutes();
  }

  async machines(appId: string): Promise<Machine[]> {
    const app = this.known(appId);
    const doc = await this.collection.findOne({ _id: app.rawId } as Document, {
      projection: { machines: 1 },
    });
    return parseMachines(doc?.machines) ?? [];
  }

  async claim(appId: string, machine: Machine): Promise<ClaimResult> {
    const app = this.known(appId);
    let cap = app.instances;
    for (let attempt = 0; attempt < CLAIM_ATTEMPTS; attempt++) {
      // Granted only while slot number `cap` (0-based cap-1) is still empty and the cap is the
      // one we read: one conditional update, so racing claims from any process serialise here.
      const filter: Document = { _id: app.rawId, [`machines.${cap - 1}`]: { $exists: false } };
      // A document without `instances` means 1 (see validateApp).
      if (cap === 1) filter.$or = [{ instances: 1 }, { instances: { $exists: false } }];
      else filter.instances = cap;
      const res = await this.collection.updateOne(filter, {
        $push: { machines: { ...machine } },
      } as Document);
      const doc = await this.collection.findOne({ _id: app.rawId } as Document, {
        projection: { machines: 1, instances: 1 },
      });
      const machines = parseMachines(doc?.machines) ?? [];
      if (res.modifiedCount === 1) return { granted: true, machines };
      if (!doc) throw new UnknownAppError(appId);
      const storedCap = doc.instances === undefined ? 1 : doc.instances;
      // A cap edited into something that is not a whole number >= 1 grants nothing (a filter on
      // `machines.-1` or `machines.0.5` would match every document).
      if (typeof storedCap !== 'number' || !Number.isInteger(storedCap) || storedCap < 1)
        return { granted: false, machines };
      // Retry only when the update lost for a reason that may not hold any more.
      if (storedCap === cap && machines.length >= cap) return { granted: false, machines };
      cap = storedCap;
    }
    return { granted: false, machines: await this.machines(appId) };
  }

  async release(appId: string, machine: Machine): Promise<void> {
    const app = this.known(appId);
    await this.collection.updateOne(
      { _id: app.rawId } as Document,
      {
        $pull: { machines: { host: machine.host, port: machine.port } },
      } as Document,
    );
  }

  async releaseMachine(host: string): Promise<number> {
    const affected = await this.collection
      .find({ 'machines.host': host }, { projection: { machines: 1 } })
      .toArray();
    let removed = 0;
    for (const doc of affected) {
      const before = parseMachines(doc.machines) ?? [];
      const res = await this.collection.updateOne({ _id: doc._id }, {
        $pull: { machines: { host } },
      } as Document);
      if (res.modifiedCount === 1) removed += before.filter((m) => m.host === host).length;
    }
    return removed;
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
