import { writeFile } from 'node:fs/promises';
import { join, resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { packageRoot } from '../util/paths.js';
import type { ArrArgs } from './arr-options.js';
import { commandContext } from './command-context.js';
import type { Print } from './registry-access.js';

export const initCommand: CommandModule<ArrArgs, ArrArgs> = {
  command: 'init',
  describe: 'write a starter apps file (--apps, default apps.json) with one app; never over a file',
  handler: async (argv) => {
    const { print, printErr } = await commandContext(argv);
    process.exit(await initAppsFile(argv.apps, argv.port, print, printErr));
  },
};

/** The starter's one app: the hello sample shipped with arr, at hello.localhost. */
export function starterApp(): Record<string, unknown> {
  return {
    _id: 'hello',
    name: 'hello',
    process: { executable: 'node', args: [join(packageRoot, 'samples', 'hello', 'server.js'), 'hello'] },
    hosts: [{ host: 'hello.localhost', ssl: 'allowed' }],
    instances: 1,
  };
}

/**
 * `arr init`: writes a starter apps file (one app per line, as arr reads it) where `--apps`
 * says, never over an existing file. 0 when written, 1 when the file exists or cannot be made.
 */
export async function initAppsFile(file: string, port: number, out: Print, err: Print): Promise<0 | 1> {
  const path = resolve(file);
  try {
    // 'wx': created here, or the call fails: an existing file is never replaced.
    await writeFile(path, `${JSON.stringify(starterApp())}\n`, { flag: 'wx' });
  } catch (e) {
    const code = (e as NodeJS.ErrnoException).code;
    err(
      code === 'EEXIST'
        ? `arr: init: ${path} exists already: it is left as it is (remove it, or give another file with --apps)`
        : `arr: init: cannot write ${path} (${code ?? (e as Error).message})`,
    );
    return 1;
  }
  out(`wrote ${path}: one app, "hello" (arr's hello sample), at hello.localhost`);
  out(`start arr here with: arr${file === 'apps.json' ? '' : ` --apps ${file}`}`);
  out(`then: curl http://hello.localhost:${port}/   (add an app: one more line like it; see the README)`);
  return 0;
}
