import { hideBin } from 'yargs/helpers';
import { UsageError } from '../config.js';
import { ALL_OPTIONS } from './arr-options.js';
import { withVariable } from './environment.js';

/** A usage error: one line naming the option (and its ARR_* variable when it came from one), exit 2. */
export function fail(message: string): never {
  process.stderr.write(`arr: ${withVariable(message, hideBin(process.argv), ALL_OPTIONS)}\n`);
  process.exit(2);
}

/** The value of `check`; a UsageError it throws is a usage error (exit 2), any other goes on. */
export async function checked<T>(check: () => T | Promise<T>): Promise<T> {
  try {
    return await check();
  } catch (err) {
    if (err instanceof UsageError) fail(err.message);
    throw err;
  }
}
