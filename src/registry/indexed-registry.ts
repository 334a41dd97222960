import { buildRouteTable } from './load.js';
import type { LoadReport } from './registry.js';
import { RouteTable } from './route-table.js';
import type { App, Problem, Route } from './types.js';

/**
 * What both registries share: the in-memory route table that answers every lookup, replaced
 * whole by each load, and whether a load changed anything.
 */
export abstract class IndexedRegistry {
  protected table = new RouteTable([]);
  private fingerprint = '';
  private lastProblems: Problem[] = [];
  /** Told of the documents of each load (worker processes are sent them: src/workers). */
  private applied: ((docs: readonly { doc: unknown }[]) => void) | undefined;

  /** `listener` is told of the documents behind every table put in place from now on. */
  onApply(listener: (docs: readonly { doc: unknown }[]) => void): void {
    this.applied = listener;
  }

  /** Validates documents into a new table and puts it in place. */
  protected apply(docs: Iterable<{ doc: unknown; line?: number }>, earlier: Problem[] = []): LoadReport {
    const list = Array.isArray(docs) ? docs : [...docs];
    const { table, problems, fingerprint } = buildRouteTable(list);
    this.table = table;
    this.applied?.(list);
    const changed = fingerprint !== this.fingerprint;
    this.fingerprint = fingerprint;
    this.lastProblems = [...earlier, ...problems];
    return { apps: table.apps.size, problems: this.lastProblems, changed };
  }

  problems(): readonly Problem[] {
    return this.lastProblems;
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
}
