#!/usr/bin/env node
import yargs from 'yargs';
import { hideBin } from 'yargs/helpers';
import { packageVersion } from '../util/paths.js';
import { appsCommand } from './apps-command.js';
import { ARR_OPTIONS } from './arr-options.js';
import { certsCommand } from './certs-command.js';
import { importCommand } from './import-command.js';
import { initCommand } from './init-command.js';
import { restartCommand } from './restart-command.js';
import { serveCommand } from './serve-command.js';
import { fail } from './usage.js';
import { validateCommand } from './validate-command.js';

/** The commands that take an argument, by name: their usage line, which a usage error shows. */
const USAGE = new Map(
  [importCommand, restartCommand, validateCommand].map(({ command }) => [
    String(command).split(' ')[0],
    `arr ${command}`,
  ]),
);

/**
 * `arr`: the commands, each a yargs command module in its own file (serve-command.ts is the
 * default one), given the options of arr-options.ts.
 */
async function main(): Promise<void> {
  await yargs(hideBin(process.argv))
    .scriptName('arr')
    .env('ARR')
    // Not .strict(): it would also reject unrelated ARR_* variables in the environment.
    .strictCommands()
    .usage(
      '$0 [options]\n\nRoutes HTTP, HTTPS, WS and WSS requests by Host to applications it starts on demand.',
    )
    .options(ARR_OPTIONS)
    .command(importCommand)
    .command(appsCommand)
    .command(certsCommand)
    .command(restartCommand)
    .command(validateCommand)
    .command(initCommand)
    .command(serveCommand)
    .example('$0', 'serve the apps in ./apps.json on ports 31415 and 31416')
    .example('$0 -m mongodb://db.internal/arr --advertise 10.0.0.5', 'join a farm')
    .example('$0 import apps.json -m mongodb://127.0.0.1/arr', 'load apps into MongoDB')
    .epilogue('Every option can also be given as an ARR_ environment variable: ARR_PORT=8080, ARR_MONGO=...')
    .help()
    .alias('help', 'h')
    .version(packageVersion())
    .wrap(Math.min(110, process.stdout.columns || 100))
    // A value yargs itself refuses (a --log-level it does not know) is a usage error like the others.
    .fail((message, err) => {
      if (err) throw err;
      const usage = USAGE.get(String(hideBin(process.argv)[0]));
      fail(`${message.replace(/\s+/g, ' ').trim()}${usage ? ` (usage: ${usage})` : ''}`);
    })
    .parseAsync();
}

main().catch((err: unknown) => {
  process.stderr.write(`arr: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
