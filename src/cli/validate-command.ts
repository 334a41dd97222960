import type { CommandModule } from 'yargs';
import { qualifies } from '../acme/qualify.js';
import { Confinement } from '../activation/confine.js';
import { Preflight } from '../activation/preflight.js';
import { envExposure, readAppsFile } from '../registry/apps-file.js';
import { buildRouteTable } from '../registry/load.js';
import { formatProblem, type Problem } from '../registry/types.js';
import type { ArrArgs } from './arr-options.js';
import { commandContext } from './command-context.js';
import { describeError, type ExitCode, type Print, plural } from './registry-access.js';

export const validateCommand: CommandModule<ArrArgs, ArrArgs & { file: string }> = {
  command: 'validate <file>',
  describe:
    'check an apps.json (documents, unknown fields, duplicates, certificates, programs) without running it',
  builder: (y) =>
    y.positional('file', { type: 'string', demandOption: true, describe: 'the apps.json to check' }),
  handler: async (argv) => {
    const { print, printErr } = await commandContext(argv);
    process.exit(await validateFile(String(argv.file), print, printErr));
  },
};

/**
 * `arr validate FILE`: everything arr would report on loading the file (documents that do not
 * parse or validate, duplicate ids and host names, unknown fields), plus what a start would run
 * into on this machine (src/activation/preflight.ts: certificates, users and groups, programs,
 * working directories); runs nothing. Exits 1 when there is any problem.
 */
export async function validateFile(file: string, out: Print, err: Print): Promise<ExitCode> {
  const result = await checkAppsFile(file).catch((e: unknown) => {
    err(`arr: validate: cannot read "${file}" (${describeError(e)})`);
    return undefined;
  });
  if (!result) return 1;
  for (const p of result.problems) out(formatProblem(p));
  if (result.exposed) out(`warning: ${result.exposed}`);
  for (const line of result.unenforced) out(`warning: ${line}`);
  if (result.acme.length > 0)
    out(`ACME-managed with --acme-email (${result.acme.length}): ${result.acme.join(', ')}`);
  out(`${plural(result.valid, 'app')} valid, ${plural(result.problems.length, 'problem')}`);
  return result.problems.length > 0 ? 1 : 0;
}

export interface FileCheck {
  /** Apps that would be served exactly as written: no problem on their document's line. */
  valid: number;
  problems: Problem[];
  /** Hosts whose certificate comes from the ACME CA when arr runs with --acme-email. */
  acme: string[];
  /** Other users can read the file, and with it the apps' `env` values. */
  exposed?: string;
  /** Limits that arr, run here as this user, could not enforce: one line per app and limit. */
  unenforced: string[];
}

/** Checks an apps file as `arr validate` does, without printing. */
export async function checkAppsFile(file: string): Promise<FileCheck> {
  const parsed = await readAppsFile(file);
  const { table, problems, lines: linesOf } = buildRouteTable(parsed.docs);
  // Duplicate ids and host names are found across documents, without a line: give them the
  // line of the valid document concerned (for a repeated _id, each later copy in turn).
  const repeats = new Map<string, number>();
  for (const p of problems) {
    if (p.line !== undefined || p.id === undefined) continue;
    const lines = linesOf.get(p.id) ?? [];
    if (p.field === '_id') {
      const n = (repeats.get(p.id) ?? 0) + 1;
      repeats.set(p.id, n);
      p.line = lines[n];
    } else {
      p.line = lines[0];
    }
  }
  const all: Problem[] = [...parsed.problems, ...problems];
  const preflight = new Preflight();
  for (const app of table.apps.values()) all.push(...(await preflight.check(app, linesOf.get(app.id)?.[0])));
  all.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  // Valid: served exactly as written, i.e. no problem on the line of the document served.
  const troubled = new Set(all.map((p) => p.line));
  const valid = [...table.apps.keys()].filter((id) => !troubled.has(linesOf.get(id)?.[0])).length;
  const acme = [...table.apps.values()]
    .flatMap((a) => a.hosts)
    .filter((h) => qualifies(h))
    .map((h) => h.host)
    .sort();
  const exposed = await envExposure(file, table.apps.values());
  const here = Confinement.probe();
  const unenforced = [...table.apps.values()].flatMap((app) =>
    here
      .unenforced(app.limits)
      .map(({ limit, why }) => `app ${app.id}: limits.${limit} is not enforced here: ${why}`),
  );
  return { valid, problems: all, acme, unenforced, ...(exposed ? { exposed } : {}) };
}
