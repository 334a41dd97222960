import type { Document } from 'mongodb';
import { readAppsFile } from '../registry/apps-file.js';
import { MongoRegistry } from '../registry/mongo-registry.js';
import { formatProblem, type Problem } from '../registry/types.js';
import { validateApp } from '../registry/validate.js';

export interface ImportResult {
  inserted: number;
  updated: number;
  rejected: Problem[];
}

/**
 * Loads an apps file into the `apps` collection: valid documents are upserted by `_id` with
 * `machines` reset to `[]`; invalid ones are reported and left out.
 */
export async function importApps(file: string, url: string): Promise<ImportResult> {
  const parsed = await readAppsFile(file);
  const rejected: Problem[] = [...parsed.problems];
  const valid: Document[] = [];
  for (const { doc, line } of parsed.docs) {
    const v = validateApp(doc);
    if (v.ok) valid.push(doc as Document);
    else rejected.push(...v.problems.map((p) => ({ ...p, line })));
  }
  const registry = new MongoRegistry(url, { serverSelectionTimeoutMS: 10_000, appName: 'arr import' });
  try {
    return { ...(await registry.upsertApps(valid)), rejected };
  } finally {
    await registry.close();
  }
}

export function reportImport(r: ImportResult, print: (line: string) => void): void {
  print(`imported: ${r.inserted} inserted, ${r.updated} updated, ${r.rejected.length} rejected`);
  for (const p of r.rejected) print(`rejected: ${formatProblem(p)}`);
}
