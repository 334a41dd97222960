import { type Document, MongoClient } from 'mongodb';
import { readAppsFile } from '../registry/apps-file.js';
import { APPS_COLLECTION, databaseName, INSTANCES_COLLECTION } from '../registry/mongo-registry.js';
import { formatProblem, type Problem } from '../registry/types.js';
import { idOf, validateApp } from '../registry/validate.js';

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
    if (v.ok) valid.push({ ...(doc as Document), machines: [] });
    else rejected.push(...v.problems.map((p) => ({ ...p, line })));
  }
  const client = new MongoClient(url, { serverSelectionTimeoutMS: 10_000, appName: 'arr import' });
  try {
    const apps = client.db(databaseName(url)).collection(APPS_COLLECTION);
    let inserted = 0;
    let updated = 0;
    const instances = client.db(databaseName(url)).collection(INSTANCES_COLLECTION);
    for (const doc of valid) {
      const res = await apps.replaceOne({ _id: doc._id }, doc, { upsert: true });
      // The instance slots go with `machines`: both are reset.
      await instances.deleteMany({ app: idOf(doc._id) });
      if (res.upsertedCount > 0) inserted++;
      else updated++;
    }
    return { inserted, updated, rejected };
  } finally {
    await client.close();
  }
}

export function reportImport(r: ImportResult, print: (line: string) => void): void {
  print(`imported: ${r.inserted} inserted, ${r.updated} updated, ${r.rejected.length} rejected`);
  for (const p of r.rejected) print(`rejected: ${formatProblem(p)}`);
}
