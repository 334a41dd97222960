import { commandLine, runOk } from '../../harness/proc.js';

export interface WrkOptions {
  url: string;
  /** The Host header (arr routes by it; the others ignore it). */
  host: string;
  connections: number;
  seconds: number;
  /** Send `Connection: close`: a new connection (and TLS handshake) for every request. */
  close?: boolean;
  threads?: number;
  /** More request fields (`Name: value`). */
  headers?: string[];
}

export interface WrkResult {
  rps: number;
  p50ms: number;
  p99ms: number;
  bytesPerSec: number;
  requests: number;
  /** Socket errors (connect, read, write, timeout) and non-2xx/3xx answers. */
  errors: number;
  command: string;
}

export const WRK = '/usr/bin/wrk';

export function wrkArgs(o: WrkOptions): string[] {
  const args = [
    `-t${o.threads ?? 1}`,
    `-c${o.connections}`,
    `-d${o.seconds}s`,
    '--latency',
    '-H',
    `Host: ${o.host}`,
  ];
  if (o.close) args.push('-H', 'Connection: close');
  for (const h of o.headers ?? []) args.push('-H', h);
  args.push(o.url);
  return args;
}

const UNIT_MS: Record<string, number> = { us: 0.001, ms: 1, s: 1000, m: 60_000 };
const UNIT_BYTES: Record<string, number> = { B: 1, KB: 1024, MB: 1024 ** 2, GB: 1024 ** 3, TB: 1024 ** 4 };

function latency(out: string, pct: string): number {
  const m = out.match(new RegExp(`^\\s+${pct}%\\s+([\\d.]+)(us|ms|s|m)\\s*$`, 'm'));
  return m ? Number(m[1]) * UNIT_MS[m[2]!]! : Number.NaN;
}

export function parseWrk(out: string): Omit<WrkResult, 'command'> {
  const rps = out.match(/^Requests\/sec:\s+([\d.]+)/m);
  const transfer = out.match(/^Transfer\/sec:\s+([\d.]+)([KMGT]?B)/m);
  const total = out.match(/^\s+(\d+) requests in/m);
  const sock = out.match(/Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)/);
  const non2xx = out.match(/Non-2xx or 3xx responses: (\d+)/);
  if (!rps) throw new Error(`cannot read wrk's output:\n${out}`);
  return {
    rps: Number(rps[1]),
    p50ms: latency(out, '50'),
    p99ms: latency(out, '99'),
    bytesPerSec: transfer ? Number(transfer[1]) * UNIT_BYTES[transfer[2]!]! : Number.NaN,
    requests: total ? Number(total[1]) : Number.NaN,
    errors: (sock ? sock.slice(1).reduce((a, b) => a + Number(b), 0) : 0) + (non2xx ? Number(non2xx[1]) : 0),
  };
}

export async function wrk(o: WrkOptions): Promise<WrkResult> {
  const args = wrkArgs(o);
  const out = await runOk(WRK, args, { timeoutMs: (o.seconds + 30) * 1000 });
  return { ...parseWrk(out), command: commandLine(WRK, args) };
}
