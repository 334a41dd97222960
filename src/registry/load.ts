import { createHash } from 'node:crypto';
import { RouteTable } from './route-table.js';
import type { App, Problem } from './types.js';
import { validateApp } from './validate.js';

type Validation = ReturnType<typeof validateApp>;

/**
 * Validation is a function of the document alone, and a document object is not changed once
 * read: the farm's copy keeps the objects of the documents that did not change (as does a
 * worker's table), so that a change costs the validation of what changed, not of every app.
 */
const validations = new WeakMap<object, Validation>();

function validated(doc: unknown): Validation {
  if (typeof doc !== 'object' || doc === null) return validateApp(doc);
  let v = validations.get(doc);
  if (v === undefined) {
    v = validateApp(doc);
    validations.set(doc, v);
  }
  return v;
}

/** What of an app tells whether a load changed anything (the fingerprint's part), by app. */
const digests = new WeakMap<App, string>();

function digestOf(app: App): string {
  let d = digests.get(app);
  if (d === undefined) {
    d = JSON.stringify([
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
    ]);
    digests.set(app, d);
  }
  return d;
}

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
    const v = validated(doc);
    if (v.ok) {
      apps.push(v.app);
      if (line !== undefined) lines.set(v.app.id, [...(lines.get(v.app.id) ?? []), line]);
      for (const w of v.warnings) problems.push(line === undefined ? w : { ...w, line });
    } else for (const p of v.problems) problems.push(line === undefined ? p : { ...p, line });
  }
  const table = new RouteTable(apps);
  const hash = createHash('sha1');
  for (const app of table.apps.values()) hash.update(digestOf(app));
  return { table, problems: [...problems, ...table.problems], fingerprint: hash.digest('hex'), lines };
}
