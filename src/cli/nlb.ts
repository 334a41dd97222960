#!/usr/bin/env node
import yargs, { type Options } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UsageError } from '../config.js';
import { DEFAULT_HEALTH } from '../nlb/backend-health.js';
import { Balancer, ListenError } from '../nlb/balancer.js';
import { ConfigError, loadConfig, type RouteConfig } from '../nlb/config.js';
import { createLogger, LOG_LEVELS } from '../util/log.js';
import { packageVersion } from '../util/paths.js';
import { unknownFlags } from './flags.js';
import { checkAddress } from './options.js';

function fail(message: string, code = 2): never {
  process.stderr.write(
    message
      .split('\n')
      .map((l) => `nlb: ${l}\n`)
      .join(''),
  );
  process.exit(code);
}

function seconds(value: unknown, option: string, allowZero: boolean): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n) || n < 0 || (!allowZero && n === 0))
    throw new UsageError(
      `${option} must be a ${allowZero ? 'number of seconds, 0 or more' : 'positive number of seconds'} (got "${String(value)}")`,
    );
  return Math.round(n * 1000);
}

/** Every option of `nlb`; also what unknown flags are checked against. */
const OPTIONS = {
  config: {
    alias: 'c',
    type: 'string',
    default: 'nlb.json',
    describe: 'the routes: [{"port": 80, "backends": [{"host": "127.0.0.1", "port": 31415}]}, ...]',
  },
  bind: {
    type: 'string',
    defaultDescription: 'all interfaces',
    describe: 'listen address of the routes that have no "host"',
  },
  'connect-timeout': {
    type: 'number',
    default: DEFAULT_HEALTH.connectTimeoutMs / 1000,
    describe: 'seconds a backend has to accept a connection before the next one is tried',
  },
  'idle-timeout': {
    type: 'number',
    default: 0,
    describe: 'close a connection after this many seconds without traffic either way (0: never)',
  },
  grace: {
    type: 'number',
    default: 10,
    describe: 'on SIGTERM/SIGINT, seconds open connections have to finish before they are closed',
  },
  verbose: {
    alias: 'v',
    type: 'boolean',
    default: false,
    describe: 'log every connection (debug level; costs throughput)',
  },
  'log-level': {
    type: 'string',
    choices: LOG_LEVELS,
    default: 'info',
    describe: 'least severe log level written (--verbose sets debug)',
  },
} as const satisfies Record<string, Options>;

async function main(): Promise<void> {
  const argv = await yargs(hideBin(process.argv))
    .scriptName('nlb')
    .env('NLB')
    // Not .strict(): it would also reject unrelated NLB_* variables in the environment.
    .strictCommands()
    .usage(
      "$0 [options]\n\nTCP round-robin load balancer: listens on each route's port of nlb.json and hands every new connection to the next backend of that route that is up.",
    )
    .options(OPTIONS)
    .example('$0', 'balance as ./nlb.json says')
    .example('$0 -c /etc/nlb.json --bind 127.0.0.1 --grace 30', 'another file, loopback only')
    .epilogue(
      'Every option can also be given as an NLB_ environment variable: NLB_CONFIG=..., NLB_GRACE=30.\n' +
        'A backend that refuses a connection or does not accept it within --connect-timeout is skipped ' +
        '(the connection goes to the next one) and probed after 1 s, then 2, 4, ... up to 30 s, until it accepts again.',
    )
    .help()
    .alias('help', 'h')
    .version(packageVersion())
    .wrap(Math.min(110, process.stdout.columns || 100))
    .parseAsync();

  const unknown = unknownFlags(hideBin(process.argv), OPTIONS);
  if (unknown.length > 0) fail(`unknown option ${unknown.join(', ')} (see nlb --help)`);
  if (argv._.length > 0) fail(`unexpected argument "${String(argv._[0])}" (see nlb --help)`);

  let routes: RouteConfig[];
  let connectTimeoutMs: number;
  let idleTimeoutMs: number;
  let graceMs: number;
  let bind: string | undefined;
  try {
    connectTimeoutMs = seconds(argv['connect-timeout'], '--connect-timeout', false);
    idleTimeoutMs = seconds(argv['idle-timeout'], '--idle-timeout', true);
    graceMs = seconds(argv.grace, '--grace', true);
    bind = argv.bind === undefined ? undefined : checkAddress(argv.bind, '--bind');
    routes = loadConfig(argv.config);
  } catch (err) {
    if (err instanceof UsageError || err instanceof ConfigError) fail(err.message);
    throw err;
  }

  const level = argv.verbose ? 'debug' : (argv['log-level'] as (typeof LOG_LEVELS)[number]);
  const log = createLogger('nlb', level);
  const balancer = new Balancer(routes, { ...DEFAULT_HEALTH, connectTimeoutMs, idleTimeoutMs, bind }, log);
  // Before listening: a signal that comes as soon as the ports are open must stop nlb cleanly.
  let stopping = false;
  const stop = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.info({ signal }, `${signal} again: closing open connections now`);
      balancer.hurry();
      return;
    }
    stopping = true;
    log.info({ signal }, `${signal}: stopping`);
    void balancer.shutdown(graceMs).then(() => {
      log.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
  try {
    await balancer.listen();
  } catch (err) {
    if (err instanceof ListenError) fail(`${argv.config}: ${err.message}`, 1);
    throw err;
  }
}

main().catch((err: unknown) => {
  process.stderr.write(`nlb: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
