import type { App, Problem, Route } from './types.js';

/**
 * The in-memory index from host name to application that answers every request. Built once per
 * load; lookups are one Map access. When two apps claim the same host name, the app with the
 * smaller id keeps it (the same winner whatever order the documents came in) and the other
 * is reported.
 */
export class RouteTable {
  readonly apps: ReadonlyMap<string, App>;
  readonly problems: Problem[] = [];
  private readonly byHost = new Map<string, Route>();

  constructor(apps: Iterable<App>) {
    const sorted = [...apps].sort((a, b) => (a.id < b.id ? -1 : a.id > b.id ? 1 : 0));
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
        const owner = this.byHost.get(rule.host);
        if (owner) {
          this.problems.push({
            id: app.id,
            field: 'hosts',
            message: `host "${rule.host}" is already served by app ${owner.app.id}; this app does not get it`,
          });
          continue;
        }
        this.byHost.set(rule.host, { rule, app });
      }
    }
    this.apps = byId;
  }

  /** The route for a normalised host name (lower case, no port, no trailing dot). */
  route(host: string): Route | undefined {
    return this.byHost.get(host);
  }

  /** Every host rule that carries its own certificate. */
  *tlsRoutes(): Iterable<Route> {
    for (const r of this.byHost.values()) if (r.rule.cert && r.rule.key) yield r;
  }

  get hostCount(): number {
    return this.byHost.size;
  }
}
