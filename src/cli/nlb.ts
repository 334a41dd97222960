#!/usr/bin/env node
import cluster from 'node:cluster';
import yargs, { type Options } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { UsageError } from '../config.js';
import { DEFAULT_HEALTH, type HealthOptions } from '../nlb/backend-health.js';
import { Balancer, ListenError } from '../nlb/balancer.js';
import { ConfigError, loadConfig, type RouteConfig } from '../nlb/config.js';
import { NlbPrimary, WorkerStartError } from '../nlb/primary.js';
import { serveAsWorker } from '../nlb/worker.js';
import { createLogger, LOG_LEVELS, type Logger } from '../util/log.js';
import { packageVersion } from '../util/paths.js';
import { unknownFlags } from './flags.js';
import { checkAddress, parseWorkers } from './options.js';

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
  workers: {
    alias: 'w',
    type: 'string',
    default: '0',
    describe:
      "worker processes that carry the connections beside a primary that keeps the backends' health and " +
      'replaces a worker that dies: a number, auto (one per core), or 0 (one process does everything)',
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
  let workers: number;
  try {
    workers = parseWorkers(argv.workers);
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
  const options = { ...DEFAULT_HEALTH, connectTimeoutMs, idleTimeoutMs, bind };
  if (cluster.isWorker) return serveAsWorker(routes, options, log, graceMs, argv.config);
  if (workers > 0) return servePrimary(workers, routes, options, log);
  const balancer = new Balancer(routes, options, log);
  // Before listening: a signal that comes as soon as the ports are open must stop nlb cleanly.
  stopOnSignals(
    log,
    'stopping',
    () => balancer.shutdown(graceMs),
    () => balancer.hurry(),
  );
  try {
    await balancer.listen();
  } catch (err) {
    if (err instanceof ListenError) fail(`${argv.config}: ${err.message}`, 1);
    throw err;
  }
}

/**
 * SIGTERM or SIGINT: `stop` (a graceful stop), then exit 0; a second signal: `hurry` (open
 * connections are closed now).
 */
function stopOnSignals(
  log: Logger,
  what: string | (() => string),
  stop: () => Promise<unknown>,
  hurry: () => void,
): void {
  let stopping = false;
  const onSignal = (signal: NodeJS.Signals) => {
    if (stopping) {
      log.info({ signal }, `${signal} again: closing open connections now`);
      hurry();
      return;
    }
    stopping = true;
    log.info({ signal }, `${signal}: ${typeof what === 'string' ? what : what()}`);
    void stop().then(() => {
      log.info('stopped');
      process.exit(0);
    });
  };
  process.on('SIGTERM', onSignal);
  process.on('SIGINT', onSignal);
}

/** `--workers N` with N >= 1: the primary forks the workers, keeps health, replaces the dead. */
async function servePrimary(
  workers: number,
  routes: RouteConfig[],
  health: HealthOptions,
  log: Logger,
): Promise<void> {
  const primary = new NlbPrimary(workers, routes, health, log);
  stopOnSignals(
    log,
    () => `stopping ${primary.serving} worker(s)`,
    () => primary.stop(),
    () => primary.hurry(),
  );
  try {
    await primary.start();
  } catch (err) {
    // The workers exit when the primary does (their pipe to it closes).
    if (err instanceof WorkerStartError) fail(err.message, 1);
    throw err;
  }
  log.info({ workers }, `${workers} worker${workers === 1 ? '' : 's'} serving`);
}

main().catch((err: unknown) => {
  process.stderr.write(`nlb: ${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
});
