import { resolve } from 'node:path';
import { hideBin } from 'yargs/helpers';
import { ARR_OPTIONS, type ArrArgs } from './arr-options.js';
import { stateDirDefault } from './environment.js';
import { unknownFlags } from './flags.js';
import { checkMongoUrl, mongoUrl } from './options.js';
import type { Print } from './registry-access.js';
import { checked, fail } from './usage.js';

/** What a command of arr works with besides its own arguments. */
export interface CommandContext {
  /** The connection string of --mongo or --mongo-file; undefined: the apps file is the registry. */
  mongo: string | undefined;
  /** --state-dir, or its default. */
  stateDir: string;
  print: Print;
  printErr: Print;
}

/**
 * What every command does first: refuse a flag it does not know (yargs is not strict: see
 * flags.ts), and check the MongoDB connection string as the driver parses it, so that a
 * malformed one is a usage error before anything starts, not a failure to connect.
 */
export async function commandContext(
  argv: ArrArgs,
  options: Record<string, object> = ARR_OPTIONS,
): Promise<CommandContext> {
  const unknown = unknownFlags(hideBin(process.argv), options);
  if (unknown.length > 0) fail(`unknown option ${unknown.join(', ')} (see arr --help)`);
  const mongo = await checked(async () => {
    const url = mongoUrl(argv.mongo, argv['mongo-file']);
    if (url !== undefined)
      await checkMongoUrl(url, argv['mongo-file'] === undefined ? '--mongo' : '--mongo-file');
    return url;
  });
  return {
    mongo,
    stateDir: resolve(argv['state-dir'] ?? stateDirDefault()),
    print: (line) => process.stdout.write(`${line}\n`),
    printErr: (line) => process.stderr.write(`${line}\n`),
  };
}
