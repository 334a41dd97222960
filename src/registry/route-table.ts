import { ObjectId } from './bson.js';
import type { App, Problem, Route } from './types.js';

/** An `_id` as MongoDB orders it: first by the rank of its BSON type, then by `key`. */
interface IdOrder {
  rank: number;
  key: number | string;
}

/**
 * MongoDB's order of the `_id`s arr accepts: numbers (by value) before strings (by code point,
 * as their UTF-8 bytes compare) before ObjectIds (by their 12 bytes, as their hex compares).
 * Ordering the printable ids as strings would put `_id: 10` before `_id: 2`.
 */
function idOrder(rawId: unknown, id: string): IdOrder {
  if (typeof rawId === 'number') return { rank: 0, key: rawId };
  if (rawId instanceof ObjectId) return { rank: 2, key: rawId.toHexString() };
  return { rank: 1, key: Buffer.from(typeof rawId === 'string' ? rawId : id, 'utf8').toString('latin1') };
}

function compareIdOrder(a: IdOrder, b: IdOrder): number {
  if (a.rank !== b.rank) return a.rank - b.rank;
  return a.key < b.key ? -1 : a.key > b.key ? 1 : 0;
}

/** The apps in MongoDB's order of their `_id`s; apps with equal ids keep their order. */
function sortById(apps: Iterable<App>): App[] {
  return [...apps]
    .map((app) => ({ app, order: idOrder(app.rawId, app.id) }))
    .sort((a, b) => compareIdOrder(a.order, b.order))
    .map(({ app }) => app);
}

/**
 * The in-memory index from host name to application that answers every request. Built once per
 * load; lookups are one Map access. When two apps claim the same host name, the app whose `_id`
 * comes first in MongoDB's order keeps it (the same winner whatever order the documents came
 * in) and the other is reported.
 *
 * Wildcard hosts (`*.example.com`) are kept apart, by the name they stand under
 * (`example.com`): a name is looked up there only when no exact host has it, one label up
 * (`a.example.com`, never `a.b.example.com` or `example.com`, as in TLS). An exact host beside a
 * wildcard wins; exact lookups cost what they did.
 */
export class RouteTable {
  readonly apps: ReadonlyMap<string, App>;
  readonly problems: Problem[] = [];
  private readonly byHost = new Map<string, Route>();
  private readonly byWildcardParent = new Map<string, Route>();

  constructor(apps: Iterable<App>) {
    const sorted = sortById(apps);
    const byId = new Map<string, App>();
    for (const app of sorted) {
      if (byId.has(app.id)) {
        this.problems.push({
          id: app.id,
          field: '_id',
          message: 'the same _id is used by another document; ignored',
        });
        continue;
      }
      byId.set(app.id, app);
      for (const rule of app.hosts) {
        const wildcard = rule.host.startsWith('*.');
        const index = wildcard ? this.byWildcardParent : this.byHost;
        const key = wildcard ? rule.host.slice(2) : rule.host;
        const owner = index.get(key);
        if (owner) {
          this.problems.push({
            id: app.id,
            field: 'hosts',
            message: `host "${rule.host}" is already served by app ${owner.app.id}; this app does not get it`,
          });
          continue;
        }
        index.set(key, { rule, app });
      }
    }
    this.apps = byId;
  }

  /**
   * The route for a normalised host name (lower case, no port, no trailing dot): its exact host,
   * else the wildcard one label up. A wildcard's own name (`*.example.com`) finds the wildcard.
   */
  route(host: string): Route | undefined {
    return this.byHost.get(host) ?? (this.byWildcardParent.size === 0 ? undefined : this.wildcard(host));
  }

  private wildcard(host: string): Route | undefined {
    const dot = host.indexOf('.');
    return dot > 0 ? this.byWildcardParent.get(host.slice(dot + 1)) : undefined;
  }

  /** Every host rule that carries its own certificate. */
  *tlsRoutes(): Iterable<Route> {
    for (const r of this.byHost.values()) if (r.rule.cert && r.rule.key) yield r;
    for (const r of this.byWildcardParent.values()) if (r.rule.cert && r.rule.key) yield r;
  }

  get hostCount(): number {
    return this.byHost.size + this.byWildcardParent.size;
  }
}
