import { RouteTable } from './route-table.js';
import type { App, Problem } from './types.js';
import { validateApp } from './validate.js';

/** Validates documents (with their file line, when they have one) into a route table. */
export function buildRouteTable(docs: Iterable<{ doc: unknown; line?: number }>): {
  table: RouteTable;
  problems: Problem[];
} {
  const apps: App[] = [];
  const problems: Problem[] = [];
  for (const { doc, line } of docs) {
    const v = validateApp(doc);
    if (v.ok) apps.push(v.app);
    else for (const p of v.problems) problems.push(line === undefined ? p : { ...p, line });
  }
  const table = new RouteTable(apps);
  return { table, problems: [...problems, ...table.problems] };
}
