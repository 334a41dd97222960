import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { networkInterfaces } from 'node:os';
import { type AdminAddress, UsageError } from '../config.js';

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
    return readFileSync(path);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    throw new UsageError(`${option}: cannot read "${path}" (${code})`);
  }
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
