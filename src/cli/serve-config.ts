import { resolve } from 'node:path';
import { type AcmeConfig, type ArrConfig, parseRange, UsageError } from '../config.js';
import type { ArrArgs } from './arr-options.js';
import { acmeDirDefault } from './environment.js';
import {
  acmeChallenges,
  acmeDns,
  checkAddress,
  checkAdminAccess,
  checkPort,
  checkPositive,
  checkWhole,
  defaultAdvertise,
  parseAdminAddress,
  parseWorkers,
  readKeyPair,
} from './options.js';

/**
 * What `arr` serves with, from its options: every value checked (a UsageError names the option
 * at fault), the certificate and key read, before anything listens.
 */
export function arrConfig(argv: ArrArgs, mongo: string | undefined, stateDir: string): ArrConfig {
  const port = checkPort(argv.port, '--port');
  const sslport = checkPort(argv.sslport, '--sslport');
  if (port === sslport && port !== 0)
    throw new UsageError(`--sslport must differ from --port (both are ${port})`);
  const config: ArrConfig = {
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
    appStderrLevel: argv['app-stderr-level'],
    workers: parseWorkers(argv.workers),
  };
  checkAdminAccess(config.admin, config.adminToken);
  const adminPort = config.admin?.port;
  if (adminPort && (adminPort === port || adminPort === sslport))
    throw new UsageError(`--admin must use a port other than --port and --sslport (got ${adminPort})`);
  return config;
}

/** `--acme-*`: automatic HTTPS, on with --acme-email. */
function acmeConfig(argv: ArrArgs): AcmeConfig | undefined {
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
