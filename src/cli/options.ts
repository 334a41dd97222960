import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { readFailure, readRegularFileSync } from '../util/read-limited.js';

/** A bad command-line option: the message names the option; the CLI prints it and exits 2. */
export class UsageError extends Error {}

export interface PortRange {
  first: number;
  last: number;
}

/** Parses `A-B` with 1 <= A <= B <= 65535. */
export function parseRange(text: string, option = '--range'): PortRange {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = m ? Number(m[1]) : Number.NaN;
  const last = m ? Number(m[2]) : Number.NaN;
  if (!m || first < 1 || last > 65535 || first > last) {
    throw new UsageError(`${option} must be A-B with 1 <= A <= B <= 65535 (got "${text}")`);
  }
  return { first, last };
}

export function checkPort(value: unknown, option: string): number {
  const n = typeof value === 'number' ? value : Number(value);
  if (!Number.isInteger(n) || n < 0 || n > 65535) {
    throw new UsageError(`${option} must be a port number from 0 to 65535 (got "${String(value)}")`);
  }
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
