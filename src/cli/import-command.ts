import type { Document } from 'mongodb';
import type { CommandModule } from 'yargs';
import { readAppsFile } from '../registry/apps-file.js';
import { formatProblem, type Problem } from '../registry/types.js';
import { validateApp } from '../registry/validate.js';
import type { ArrArgs } from './arr-options.js';
import { commandContext } from './command-context.js';
import { fail } from './usage.js';

/** Where `arr import` writes without --mongo. */
const DEFAULT_IMPORT_MONGO = 'mongodb://127.0.0.1:27017/arr';

export const importCommand: CommandModule<ArrArgs, ArrArgs & { file: string }> = {
  command: 'import <file>',
  describe: 'load an apps.json into the MongoDB "apps" collection (upsert by _id, machines reset)',
  builder: (y) =>
    y.positional('file', {
      type: 'string',
      demandOption: true,
      describe: 'apps.json: extended JSON, one document per line, or an array',
    }),
  handler: async (argv) => {
    const { mongo, print } = await commandContext(argv);
    const file = String(argv.file);
    const result = await importApps(file, mongo ?? DEFAULT_IMPORT_MONGO).catch((err: Error) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR')
        fail(`import: cannot read "${file}" (${code})`);
      fail(`import: ${err.message}`);
    });
    reportImport(result, print);
    process.exit(result.rejected.length > 0 ? 1 : 0);
  },
};

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
  // Loaded here: the other commands of arr, and arr serving a file, run without the driver.
  const { MongoRegistry } = await import('../registry/mongo-registry.js');
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
