import { commandLine, runOk } from '../../harness/proc.js';
import { cpuSeconds } from './cpu.js';

/** nghttp2's HTTP/2 load generator (Debian's nghttp2-client; scripts/install-nghttp2.sh). */
export const H2LOAD = '/usr/bin/h2load';

export interface H2loadOptions {
  url: string;
  /** The `:authority` (arr routes by it). */
  authority: string;
  /** Connections (`-c`) and streams in flight on each (`-m`). */
  clients: number;
  streams: number;
  seconds: number;
  /** A request body (`-d`: every request is a POST of this file) and more header fields (`-H`). */
  data?: string;
  headers?: string[];
}

export interface H2loadResult {
  rps: number;
  /** Requests that got a 2xx answer. */
  requests: number;
  /** Requests that failed, errored, timed out or got a non-2xx answer. */
  errors: number;
  /** Whether every connection negotiated h2 (h2load reports the protocol). */
  h2: boolean;
  /** CPU microseconds per request of each watched process, by label. */
  cpuUs: Record<string, number>;
  command: string;
}

export function h2loadArgs(o: H2loadOptions): string[] {
  return [
    '-t1',
    `-c${o.clients}`,
    `-m${o.streams}`,
    `-D${o.seconds}`,
    '--warm-up-time=1',
    '-H',
    `:authority: ${o.authority}`,
    ...(o.headers ?? []).flatMap((h) => ['-H', h]),
    ...(o.data ? ['-d', o.data] : []),
    o.url,
  ];
}

export function parseH2load(out: string): Omit<H2loadResult, 'cpuUs' | 'command'> {
  const rps = out.match(/^finished in [\d.]+m?s, ([\d.]+) req\/s/m);
  const req = out.match(
    /^requests: \d+ total, \d+ started, (\d+) done, (\d+) succeeded, (\d+) failed, (\d+) errored, (\d+) timeout/m,
  );
  const codes = out.match(/^status codes: (\d+) 2xx, (\d+) 3xx, (\d+) 4xx, (\d+) 5xx/m);
  if (!rps || !req || !codes) throw new Error(`cannot read h2load's output:\n${out}`);
  const ok = Number(codes[1]);
  return {
    rps: Number(rps[1]),
    requests: ok,
    errors: Number(req[3]) + Number(req[4]) + Number(req[5]) + Number(codes[3]) + Number(codes[4]),
    h2: /Application protocol: h2/.test(out),
  };
}

/** An h2load run, with the CPU that each of `pids` spent per request meanwhile (warm-up included in neither). */
export async function h2load(o: H2loadOptions, pids: Record<string, number>): Promise<H2loadResult> {
  const args = h2loadArgs(o);
  // h2load warms up for 1 s before it counts: the CPU is read over the whole run and divided by
  // the requests of the counted part scaled up to the whole run's duration.
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const t0 = performance.now();
  const out = await runOk(H2LOAD, args, { timeoutMs: (o.seconds + 30) * 1000 });
  const wall = (performance.now() - t0) / 1000;
  const r = parseH2load(out);
  const cpuUs: Record<string, number> = {};
  for (const [k, pid] of Object.entries(pids))
    cpuUs[k] = ((cpuSeconds(pid) - before[k]!) * 1e6) / (r.rps * wall);
  return { ...r, cpuUs, command: commandLine(H2LOAD, args) };
}
