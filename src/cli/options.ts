import { accessSync, constants, statSync } from 'node:fs';
import { isIP } from 'node:net';
import { availableParallelism, networkInterfaces } from 'node:os';
import { resolve } from 'node:path';
import { parseDnsProvider } from '../acme/dns/provider.js';
import { parseTsigKey } from '../acme/dns/tsig.js';
import { type AcmeDnsConfig, type AdminAddress, UsageError } from '../config.js';
import { tokenProblem } from '../ops/admin/admin-auth.js';
import { isLoopback } from '../ops/admin/admin-server.js';
import { CertificateError, secureContextOf } from '../util/certificates.js';
import { readFailure, readRegularFileSync } from '../util/read-limited.js';

export function checkPort(value: unknown, option: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`${option} must be a port number from 0 to 65535 (got "${String(value)}")`);
  }
  return n;
}

/** A whole number of at least 1. */
export function checkWhole(value: unknown, option: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < 1)
    throw new UsageError(`${option} must be a whole number of at least 1 (got "${String(value)}")`);
  return n;
}

/** `--workers`: a whole number from 0 (one process) to 256, or `auto`: one per core. */
export function parseWorkers(value: unknown): number {
  const text = String(value).trim();
  if (text === 'auto') return availableParallelism();
  const n = Number(text);
  if (text === '' || !Number.isInteger(n) || n < 0 || n > 256)
    throw new UsageError(
      `--workers must be auto or a whole number from 0 (one process) to 256 (got "${String(value)}")`,
    );
  return n;
}

export function checkPositive(value: unknown, option: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isFinite(n) || n <= 0)
    throw new UsageError(`${option} must be a positive number (got "${String(value)}")`);
  return n;
}

/** Reads a PEM file named by an option, or fails naming the option and the file. */
export function readPem(path: string, option: string): Buffer {
  try {
    return readRegularFileSync(path);
  } catch (err) {
    throw new UsageError(`${option}: cannot read "${path}" (${readFailure(err)})`);
  }
}

/** A connection string is a line; a file much bigger than that is not one. */
const MAX_MONGO_FILE_BYTES = 64 * 1024;

/**
 * The MongoDB URL of --mongo, or read from the file of --mongo-file (trimmed): there it shows in
 * no command line, which any local user can read in /proc/PID/cmdline.
 */
export function mongoUrl(mongo: string | undefined, mongoFile: string | undefined): string | undefined {
  if (mongoFile === undefined) return mongo;
  if (mongo !== undefined) throw new UsageError('--mongo and --mongo-file go alone: give one of them');
  let url: string;
  try {
    url = readRegularFileSync(mongoFile, MAX_MONGO_FILE_BYTES).toString('utf8').trim();
  } catch (err) {
    throw new UsageError(`--mongo-file: cannot read "${mongoFile}" (${readFailure(err)})`);
  }
  if (url === '') throw new UsageError(`--mongo-file: "${mongoFile}" is empty`);
  return url;
}

export function checkAddress(value: string, option: string): string {
  if (isIP(value) === 0 && value !== 'localhost') {
    throw new UsageError(`${option} must be an IP address (got "${value}")`);
  }
  return value;
}

/** The first non-internal IPv4 address of this machine, or 127.0.0.1 when it has none. */
export function defaultAdvertise(): string {
  for (const list of Object.values(networkInterfaces())) {
    for (const a of list ?? []) if (a.family === 'IPv4' && !a.internal) return a.address;
  }
  return '127.0.0.1';
}

/**
 * `--admin`: `PORT` (on 127.0.0.1), `ADDR:PORT` or `[IPv6]:PORT`; ADDR is an IP address or
 * `localhost`. Port 0 picks a free port (the log says which).
 */
export function parseAdminAddress(text: string, option = '--admin'): AdminAddress {
  const bad = () =>
    new UsageError(`${option} must be PORT or ADDR:PORT, e.g. 9090 or 127.0.0.1:9090 (got "${text}")`);
  const m = /^(?:\[([^\]]+)\]:|([^:[\]]+):)?(\d{1,5})$/.exec(text.trim());
  if (!m) throw bad();
  const host = m[1] ?? m[2] ?? '127.0.0.1';
  if (m[1] !== undefined && isIP(m[1]) !== 6) throw bad();
  return { host: checkAddress(host, option), port: checkPort(m[3], option) };
}

/**
 * The admin endpoint tells the apps' names, hosts, traffic and output: off loopback it needs a
 * token. Checked before anything listens (or any leftover instance is stopped).
 */
export function checkAdminAccess(admin: AdminAddress | undefined, token: string | undefined): void {
  if (token !== undefined) {
    if (!admin) throw new UsageError('--admin-token is given without --admin: give both, or neither');
    const problem = tokenProblem(token);
    if (problem) throw new UsageError(`--admin-token ${problem}`);
    return;
  }
  if (admin && !isLoopback(admin.host))
    throw new UsageError(
      `--admin ${admin.host} is not a loopback address: give --admin-token TOKEN (or ARR_ADMIN_TOKEN), which every admin path but /healthz will then require, or listen on 127.0.0.1`,
    );
}

/**
 * `--cert` and `--key`: both readable, and a key that belongs to the certificate (else one
 * message naming both files). Their paths are kept for a reload (SIGHUP).
 */
export function readKeyPair(
  certFile: string,
  keyFile: string,
): { cert: Buffer; key: Buffer; certFile: string; keyFile: string } {
  const cert = readPem(certFile, '--cert');
  const key = readPem(keyFile, '--key');
  try {
    secureContextOf(cert, key, certFile, keyFile);
  } catch (err) {
    if (err instanceof CertificateError) throw new UsageError(`--cert and --key: ${err.message}`);
    throw err;
  }
  return { cert, key, certFile: resolve(certFile), keyFile: resolve(keyFile) };
}

/**
 * A MongoDB connection string the driver can use, checked as the driver parses it (without
 * connecting): a malformed one is a usage error naming the option. The URL itself is not
 * repeated (it may hold a password).
 */
export async function checkMongoUrl(url: string, option: string): Promise<void> {
  const { MongoClient } = await import('mongodb');
  let client: InstanceType<typeof MongoClient>;
  try {
    client = new MongoClient(url);
  } catch (err) {
    throw new UsageError(
      `${option}: not a MongoDB connection string (${(err as Error).message}); one looks like mongodb://HOST[:PORT]/DATABASE`,
    );
  }
  await client.close();
}

const CHALLENGE_TYPES = ['http-01', 'tls-alpn-01', 'dns-01'] as const;

/** `--acme-challenges`: a list of http-01, tls-alpn-01 and dns-01 (which needs --acme-dns). */
export function acmeChallenges(text: string, dns: boolean): (typeof CHALLENGE_TYPES)[number][] {
  const list = text.split(',').map((c) => c.trim());
  if (list.length === 0 || list.some((c) => !(CHALLENGE_TYPES as readonly string[]).includes(c)))
    throw new UsageError(`--acme-challenges must list http-01, tls-alpn-01 and/or dns-01 (got "${text}")`);
  if (list.includes('dns-01') && !dns)
    throw new UsageError('--acme-challenges dns-01 needs --acme-dns: where the TXT records go');
  return [...new Set(list)] as (typeof CHALLENGE_TYPES)[number][];
}

/**
 * `--acme-dns exec:PATH` (an executable file) or `rfc2136:HOST:PORT` with `ARR_ACME_TSIG`
 * (`name:algorithm:base64secret`), and `--acme-dns-wait` in seconds (0: no propagation check).
 */
export function acmeDns(
  text: string | undefined,
  waitSeconds: unknown,
  tsig: string | undefined,
): AcmeDnsConfig | undefined {
  if (text === undefined || text === '') return undefined;
  const wait = Number(waitSeconds);
  if (!Number.isFinite(wait) || wait < 0 || wait > 3600)
    throw new UsageError(
      `--acme-dns-wait must be a number of seconds from 0 to 3600 (got "${String(waitSeconds)}")`,
    );
  let spec: ReturnType<typeof parseDnsProvider>;
  try {
    spec = parseDnsProvider(text);
  } catch (err) {
    throw new UsageError(`--acme-dns ${(err as Error).message}`);
  }
  const waitMs = wait * 1000;
  if (spec.kind === 'exec') {
    const path = resolve(spec.path);
    try {
      if (!statSync(path).isFile()) throw new Error('not a file');
      accessSync(path, constants.X_OK);
    } catch (err) {
      throw new UsageError(`--acme-dns exec: "${spec.path}" is not an executable file (${readFailure(err)})`);
    }
    return { kind: 'exec', path, waitMs };
  }
  if (tsig === undefined || tsig === '')
    throw new UsageError(
      '--acme-dns rfc2136 needs the TSIG key in ARR_ACME_TSIG (name:algorithm:base64secret)',
    );
  try {
    return { ...spec, tsig: parseTsigKey(tsig), waitMs };
  } catch (err) {
    throw new UsageError(`ARR_ACME_TSIG ${(err as Error).message}`);
  }
}
