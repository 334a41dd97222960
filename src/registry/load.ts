import { createHash } from 'node:crypto';
import { RouteTable } from './route-table.js';
import type { App, Problem } from './types.js';
import { validateApp } from './validate.js';

/** Validates documents (with their file line, when they have one) into a route table. */
export function buildRouteTable(docs: Iterable<{ doc: unknown; line?: number }>): {
  table: RouteTable;
  problems: Problem[];
  /** A digest of the valid apps, to tell whether a reload changed anything. */
  fingerprint: string;
  /** The lines of the valid documents, by app id (several when an _id is repeated). */
  lines: Map<string, number[]>;
} {
  const apps: App[] = [];
  const problems: Problem[] = [];
  const lines = new Map<string, number[]>();
  for (const { doc, line } of docs) {
    const v = validateApp(doc);
    if (v.ok) {
      apps.push(v.app);
      if (line !== undefined) lines.set(v.app.id, [...(lines.get(v.app.id) ?? []), line]);
      for (const w of v.warnings) problems.push(line === undefined ? w : { ...w, line });
    } else for (const p of v.problems) problems.push(line === undefined ? p : { ...p, line });
  }
  const table = new RouteTable(apps);
  const hash = createHash('sha1');
  for (const app of table.apps.values())
    hash.update(
      JSON.stringify([
        app.id,
        app.name,
        app.process,
        app.hosts,
        app.instances,
        app.user,
        app.group,
        app.env,
        app.cwd,
        app.ready,
        app.stopTimeout,
        app.revision,
      ]),
    );
  return { table, problems: [...problems, ...table.problems], fingerprint: hash.digest('hex'), lines };
}
