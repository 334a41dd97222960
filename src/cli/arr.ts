#!/usr/bin/env node
import { resolve } from 'node:path';
import yargs, { type Options } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { LETS_ENCRYPT } from '../acme/directories.js';
import { type AcmeConfig, type ArrConfig, parseRange, UsageError } from '../config.js';
import { LOG_LEVELS } from '../util/log.js';
import { DEFAULT_CERT, DEFAULT_KEY, packageVersion } from '../util/paths.js';
import { acmeDirDefault, stateDirDefault, withVariable } from './environment.js';
import { APPS_OPTIONS, COMMAND_USAGE, unknownFlags } from './flags.js';
import {
  acmeChallenges,
  acmeDns,
  checkAddress,
  checkAdminAccess,
  checkMongoUrl,
  checkPort,
  checkPositive,
  checkWhole,
  defaultAdvertise,
  mongoUrl,
  parseAdminAddress,
  parseWorkers,
  readKeyPair,
} from './options.js';
import { serve } from './serve-command.js';

const DEFAULT_IMPORT_MONGO = 'mongodb://127.0.0.1:27017/arr';

/** A usage error: one line naming the option (and its ARR_* variable when it came from one), exit 2. */
function fail(message: string): never {
  const known = { ...OPTIONS, ...APPS_OPTIONS };
  process.stderr.write(`arr: ${withVariable(message, hideBin(process.argv), known)}\n`);
  process.exit(2);
}

/** Every option of `arr`, with its aliases; also what unknown flags are checked against. */
const OPTIONS = {
  mongo: {
    alias: 'm',
    type: 'string',
    describe: 'MongoDB connection string (the farm); without it the file registry is used',
  },
  'mongo-file': {
    type: 'string',
    describe:
      'read the MongoDB connection string from this file (trimmed), so that it shows in no command line; instead of --mongo',
  },
  apps: {
    alias: 'a',
    type: 'string',
    default: 'apps.json',
    describe: 'the file registry (ignored with --mongo)',
  },
  range: {
    alias: 'r',
    type: 'string',
    default: '8000-9000',
    describe: 'TCP ports arr may give to application instances, A-B',
  },
  port: { alias: 'p', type: 'number', default: 31415, describe: 'plain HTTP/WS listen port' },
  sslport: {
    alias: 's',
    type: 'number',
    default: 31416,
    describe: 'HTTPS/WSS listen port (must differ from --port)',
  },
  cert: {
    alias: 'c',
    type: 'string',
    default: DEFAULT_CERT,
    defaultDescription: 'the sample wildcard certificate',
    describe: 'default (non-SNI) certificate, PEM',
  },
  key: {
    alias: 'k',
    type: 'string',
    default: DEFAULT_KEY,
    defaultDescription: 'its key',
    describe: 'private key of --cert, PEM',
  },
  advertise: {
    type: 'string',
    defaultDescription: 'first non-internal IPv4',
    describe: 'address other arr nodes use to reach instances started here',
  },
  bind: {
    type: 'string',
    defaultDescription: 'all interfaces',
    describe: 'listen address for --port and --sslport',
  },
  'start-timeout': {
    type: 'number',
    default: 15,
    describe: 'seconds an instance has to accept connections after it is started',
  },
  poll: {
    type: 'number',
    default: 2,
    describe: "with --mongo: seconds between reads of the registry (app changes, other nodes' instances)",
  },
  heartbeat: {
    type: 'number',
    default: 2,
    describe: 'with --mongo: seconds between liveness beats; a node silent for 5 beats is taken for dead',
  },
  'header-timeout': {
    type: 'number',
    default: 20,
    describe: 'seconds a client has to send a complete request head (and TLS handshake); then it is closed',
  },
  'keepalive-timeout': {
    type: 'number',
    default: 65,
    describe: "seconds a client's idle keep-alive connection is kept open",
  },
  'proxy-timeout': {
    type: 'number',
    default: 60,
    describe: 'seconds an instance has to begin its answer to a request; then 504 (WebSockets are exempt)',
  },
  'body-timeout': {
    type: 'number',
    default: 60,
    describe: 'seconds a request body may stall (no byte arriving); then 408 and the connection is closed',
  },
  'instance-connections': {
    type: 'number',
    default: 256,
    describe: 'connections arr opens to one instance at most; further requests wait in arr for one',
  },
  'idle-timeout': {
    type: 'number',
    default: 0,
    describe:
      'seconds an instance may serve nothing (no request, no WebSocket) before it is stopped; 0: never',
  },
  drain: {
    type: 'number',
    default: 30,
    describe:
      'seconds an instance replaced by a deploy keeps its WebSockets (and requests in flight) before it is stopped',
  },
  workers: {
    type: 'string',
    default: 'auto',
    describe:
      'worker processes that carry the traffic beside a primary that owns the instances: a number, auto (one per core), or 0 (one process does both)',
  },
  'state-dir': {
    type: 'string',
    defaultDescription: '$XDG_STATE_HOME/arr or ~/.local/state/arr',
    describe:
      'where arr lists the instances it runs, so that none outlives it (and its next run stops leftovers)',
  },
  admin: {
    type: 'string',
    defaultDescription: 'off',
    describe:
      'serve the dashboard (/), its JSON API (/api), /healthz and /metrics (Prometheus) on [ADDR:]PORT, 127.0.0.1 unless ADDR is given; an ADDR other than loopback needs --admin-token',
  },
  'admin-token': {
    type: 'string',
    describe:
      'require "Authorization: Bearer TOKEN" on every --admin path but /healthz (at least 16 characters; ARR_ADMIN_TOKEN keeps it out of the command line)',
  },
  'access-log': {
    type: 'boolean',
    default: false,
    describe: 'log one info line per request and WebSocket: method, host, path, status, bytes, ms, app',
  },
  'trust-proxy-protocol': {
    type: 'boolean',
    default: false,
    describe:
      'expect a PROXY protocol v1 header (nlb "proxyProtocol": true) on every connection and take its source for the client address; arr must then be reachable only through the balancer',
  },
  'acme-email': {
    type: 'string',
    defaultDescription: 'off',
    describe:
      'turn on automatic HTTPS: certificates from an ACME CA for every qualifying host, this address as the account contact',
  },
  'acme-directory': {
    type: 'string',
    default: LETS_ENCRYPT,
    defaultDescription: "Let's Encrypt production",
    describe: "with --acme-email: the CA's ACME directory URL",
  },
  'acme-dir': {
    type: 'string',
    defaultDescription: '$XDG_DATA_HOME/arr/acme or ~/.local/share/arr/acme',
    describe: 'with --acme-email and without --mongo: where the account, certificates and keys are kept',
  },
  'acme-challenges': {
    type: 'string',
    default: 'http-01,tls-alpn-01',
    describe:
      'with --acme-email: the challenge types used for hosts, in order of preference: http-01, tls-alpn-01, dns-01 (needs --acme-dns); wildcard hosts use dns-01 alone',
  },
  'acme-dns': {
    type: 'string',
    defaultDescription: 'off',
    describe:
      'with --acme-email: DNS-01 (needed by wildcard hosts) through exec:PATH (run as PATH present|cleanup FQDN VALUE) or rfc2136:HOST:PORT (dynamic updates signed with the TSIG key of ARR_ACME_TSIG, name:algorithm:base64secret)',
  },
  'acme-dns-wait': {
    type: 'number',
    default: 120,
    describe:
      "with --acme-dns: seconds to wait at most for a challenge's TXT record to be served by every authoritative server of its zone before the CA is asked; 0 does not check",
  },
  http2: {
    type: 'boolean',
    default: true,
    describe:
      'offer HTTP/2 on the TLS port (ALPN h2, then http/1.1); --no-http2 (ARR_HTTP2=false) offers HTTP/1.1 only',
  },
  h2c: {
    type: 'boolean',
    default: true,
    describe:
      'take HTTP/2 with prior knowledge (h2c: the connection preface) on the plain port; --no-h2c (ARR_H2C=false) answers it 400',
  },
  'log-level': {
    type: 'string',
    choices: LOG_LEVELS,
    default: 'info',
    describe: 'least severe log level written',
  },
  'app-stderr-level': {
    type: 'string',
    choices: LOG_LEVELS,
    default: 'info',
    describe: "the level of instances' stderr lines in arr's log (stdout's is info); silent drops them",
  },
} as const satisfies Record<string, Options>;

/** `--acme-*`: automatic HTTPS, on with --acme-email. */
function acmeConfig(argv: {
  'acme-email'?: string;
  'acme-directory': string;
  'acme-dir'?: string;
  'acme-challenges': string;
  'acme-dns'?: string;
  'acme-dns-wait': number;
}): AcmeConfig | undefined {
  const email = argv['acme-email'];
  if (email === undefined || email === '') return undefined;
  if (!/^[^\s@]+@[^\s@]+\.[^\s@]+$/.test(email))
    throw new UsageError(`--acme-email must be an e-mail address (got "${email}")`);
  let directory: URL;
  try {
    directory = new URL(argv['acme-directory']);
  } catch {
    throw new UsageError(`--acme-directory must be a URL (got "${argv['acme-directory']}")`);
  }
  if (directory.protocol !== 'https:')
    throw new UsageError(`--acme-directory must be an https:// URL (got "${argv['acme-directory']}")`);
  const dns = acmeDns(argv['acme-dns'], argv['acme-dns-wait'], process.env.ARR_ACME_TSIG);
  return {
    email,
    directory: directory.href,
    dir: resolve(argv['acme-dir'] ?? acmeDirDefault()),
    challenges: acmeChallenges(argv['acme-challenges'], dns !== undefined),
    ...(dns ? { dns } : {}),
    secret: process.env.ARR_ACME_KEY || undefined,
  };
}

async function main(): Promise<void> {
  const cli = yargs(hideBin(process.argv))
    .scriptName('arr')
    .env('ARR')
    // Not .strict(): it would also reject unrelated ARR_* variables in the environment.
    .strictCommands()
    .usage(
      '$0 [options]\n\nRoutes HTTP, HTTPS, WS and WSS requests by Host to applications it starts on demand.',
    )
    .options(OPTIONS)
    .command(
      'import <file>',
      'load an apps.json into the MongoDB "apps" collection (upsert by _id, machines reset)',
      (y) =>
        y.positional('file', {
          type: 'string',
          demandOption: true,
          describe: 'apps.json: extended JSON, one document per line, or an array',
        }),
    )
    .command('apps', 'list the apps of the registry (--apps or --mongo): hosts, cap, where they run', (y) =>
      y.options(APPS_OPTIONS),
    )
    .command(
      'certs',
      'list every host of the registry (--apps or --mongo) with its certificate: own, acme or default; issuer, expiry, last error',
      (y) => y.options(APPS_OPTIONS),
    )
    .command(
      'restart <app>',
      'replace the instances of an app (its name or _id) on every node, without a dropped request (--apps or --mongo)',
      (y) =>
        y
          .positional('app', { type: 'string', demandOption: true, describe: "the app's name or _id" })
          .options(APPS_OPTIONS),
    )
    .command(
      'validate <file>',
      'check an apps.json (documents, unknown fields, duplicates, certificates, programs) without running it',
      (y) => y.positional('file', { type: 'string', demandOption: true, describe: 'the apps.json to check' }),
    )
    .command('init', 'write a starter apps file (--apps, default apps.json) with one app; never over a file')
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
      const command = COMMAND_USAGE[String(hideBin(process.argv)[0])];
      fail(`${message.replace(/\s+/g, ' ').trim()}${command ? ` (usage: ${command})` : ''}`);
    });

  const argv = await cli.parseAsync();
  const known =
    argv._[0] === 'apps' || argv._[0] === 'restart' || argv._[0] === 'certs'
      ? { ...OPTIONS, ...APPS_OPTIONS }
      : OPTIONS;
  const unknown = unknownFlags(hideBin(process.argv), known);
  if (unknown.length > 0) fail(`unknown option ${unknown.join(', ')} (see arr --help)`);

  let mongo: string | undefined;
  try {
    mongo = mongoUrl(argv.mongo, argv['mongo-file']);
    // A malformed URL is a usage error (before anything starts), not a failure to connect.
    if (mongo !== undefined)
      await checkMongoUrl(mongo, argv['mongo-file'] === undefined ? '--mongo' : '--mongo-file');
  } catch (err) {
    if (err instanceof UsageError) fail(err.message);
    throw err;
  }

  if (argv._[0] === 'import') {
    const { importApps, reportImport } = await import('./import.js');
    const file = String(argv.file);
    const url = mongo ?? DEFAULT_IMPORT_MONGO;
    const result = await importApps(file, url).catch((err: Error) => {
      const code = (err as NodeJS.ErrnoException).code;
      if (code === 'ENOENT' || code === 'EACCES' || code === 'EISDIR')
        fail(`import: cannot read "${file}" (${code})`);
      fail(`import: ${err.message}`);
    });
    reportImport(result, (l) => process.stdout.write(`${l}\n`));
    process.exit(result.rejected.length > 0 ? 1 : 0);
  }
  const print = (l: string) => process.stdout.write(`${l}\n`);
  const printErr = (l: string) => process.stderr.write(`${l}\n`);
  const stateDir = resolve(argv['state-dir'] ?? stateDirDefault());
  if (argv._[0] === 'init') {
    const { initAppsFile } = await import('./init-command.js');
    process.exit(await initAppsFile(argv.apps, argv.port, print, printErr));
  }
  if (argv._[0] === 'validate') {
    const { validateFile } = await import('./validate-command.js');
    process.exit(await validateFile(String(argv.file), print, printErr));
  }
  if (argv._[0] === 'apps')
    process.exit(
      await (await import('./apps-command.js')).listApps(
        { apps: argv.apps, mongo, json: !!argv.json, stateDir, acmeOn: !!argv['acme-email'] },
        print,
        printErr,
      ),
    );
  if (argv._[0] === 'certs')
    process.exit(
      await (await import('./certs-command.js')).listCerts(
        {
          apps: argv.apps,
          mongo,
          json: !!argv.json,
          acmeDir: resolve(argv['acme-dir'] ?? acmeDirDefault()),
          defaultCert: argv.cert,
        },
        print,
        printErr,
      ),
    );
  if (argv._[0] === 'restart')
    process.exit(
      await (await import('./restart-command.js')).restartApp(
        String(argv.app),
        { apps: argv.apps, mongo, wait: !!argv.wait, stateDir },
        print,
        printErr,
      ),
    );
  if (argv._.length > 0) fail(`unknown command "${String(argv._[0])}" (see arr --help)`);

  let config: ArrConfig;
  try {
    const port = checkPort(argv.port, '--port');
    const sslport = checkPort(argv.sslport, '--sslport');
    if (port === sslport && port !== 0)
      throw new UsageError(`--sslport must differ from --port (both are ${port})`);
    config = {
      mongo,
      apps: resolve(argv.apps),
      range: parseRange(argv.range),
      port,
      sslport,
      ...readKeyPair(argv.cert, argv.key),
      advertise: checkAddress(argv.advertise ?? defaultAdvertise(), '--advertise'),
      bind: argv.bind === undefined ? undefined : checkAddress(argv.bind, '--bind'),
      startTimeoutMs: checkPositive(argv['start-timeout'], '--start-timeout') * 1000,
      pollMs: checkPositive(argv.poll, '--poll') * 1000,
      heartbeatMs: checkPositive(argv.heartbeat, '--heartbeat') * 1000,
      headerTimeoutMs: checkPositive(argv['header-timeout'], '--header-timeout') * 1000,
      keepAliveTimeoutMs: checkPositive(argv['keepalive-timeout'], '--keepalive-timeout') * 1000,
      proxyTimeoutMs: checkPositive(argv['proxy-timeout'], '--proxy-timeout') * 1000,
      bodyTimeoutMs: checkPositive(argv['body-timeout'], '--body-timeout') * 1000,
      instanceConnections: checkWhole(argv['instance-connections'], '--instance-connections'),
      idleTimeoutMs:
        argv['idle-timeout'] === 0 ? 0 : checkPositive(argv['idle-timeout'], '--idle-timeout') * 1000,
      admin: argv.admin === undefined ? undefined : parseAdminAddress(argv.admin),
      // An empty ARR_ADMIN_TOKEN= (a unit file's placeholder) is no token.
      adminToken: argv['admin-token'] === '' ? undefined : argv['admin-token'],
      accessLog: argv['access-log'],
      trustProxyProtocol: argv['trust-proxy-protocol'],
      drainMs: argv.drain === 0 ? 0 : checkPositive(argv.drain, '--drain') * 1000,
      stateDir,
      acme: acmeConfig(argv),
      http2: argv.http2,
      h2c: argv.h2c,
      appStderrLevel: argv['app-stderr-level'] as (typeof LOG_LEVELS)[number],
      workers: parseWorkers(argv.workers),
    };
    checkAdminAccess(config.admin, config.adminToken);
    const adminPort = config.admin?.port;
    if (adminPort && (adminPort === port || adminPort === sslport))
      throw new UsageError(`--admin must use a port other than --port and --sslport (got ${adminPort})`);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message);
    throw err;
  }

  await serve(config, argv['log-level'] as (typeof LOG_LEVELS)[number], fail);
}

main().catch((err: unknown) => {
  process.stderr.write(`arr: ${err instanceof Error ? err.message : String(err)}\n`);
  process.exit(1);
});
