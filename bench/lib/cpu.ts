import { readdirSync, readFileSync } from 'node:fs';
import { cpuSeconds, statFields } from '../../harness/proc.js';
import { type WrkOptions, type WrkResult, wrk } from './wrk.js';

// The harness's /proc readers (the farm test reads the registry server's CPU too).
export { cpuSeconds };

/** The pids of a process's children (nginx's worker under its master). */
export function childrenOf(pid: number): number[] {
  const out: number[] = [];
  for (const e of readdirSync('/proc')) {
    if (!/^\d+$/.test(e)) continue;
    try {
      if (Number(statFields(Number(e))[1]) === pid) out.push(Number(e));
    } catch {
      // gone meanwhile
    }
  }
  return out;
}

export type CpuResult = WrkResult & {
  /** CPU microseconds per request of each watched process, by label. */
  cpuUs: Record<string, number>;
};

/** A wrk run that also reports how much CPU each of `pids` spent per request meanwhile. */
export async function wrkCpu(o: WrkOptions, pids: Record<string, number>): Promise<CpuResult> {
  const before = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuSeconds(pid)]));
  const r = await wrk(o);
  const cpuUs: Record<string, number> = {};
  for (const [k, pid] of Object.entries(pids)) cpuUs[k] = ((cpuSeconds(pid) - before[k]!) * 1e6) / r.requests;
  return { ...r, cpuUs };
}

/** CPU microseconds per request of one watched process of a run (NaN if it was not watched). */
export function cpuOf(r: WrkResult, label: string): number {
  return (r as Partial<CpuResult>).cpuUs?.[label] ?? Number.NaN;
}

/** Resident set size of a process in bytes (VmRSS of /proc/PID/status). */
export function rssOf(pid: number): number {
  const m = readFileSync(`/proc/${pid}/status`, 'utf8').match(/^VmRSS:\s+(\d+)\s+kB/m);
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) * 1024;
}

/** The command line of a process as `ps -o args` shows it (its title, once it set one). */
export function cmdlineOf(pid: number): string {
  try {
    return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
  } catch {
    return '';
  }
}

/**
 * A server and its worker processes, by label: `main` and `w1`, `w2`... (children whose
 * command line matches `workers`: "nginx: worker process", "arr worker N", "nlb worker N"; an
 * app instance under arr does not match).
 */
export function familyOf(pid: number, workers: RegExp): Record<string, number> {
  const out: Record<string, number> = { main: pid };
  childrenOf(pid)
    .filter((c) => workers.test(cmdlineOf(c)))
    .sort((a, b) => a - b)
    .forEach((c, i) => {
      out[`w${i + 1}`] = c;
    });
  return out;
}

/** The sum of a run's CPU per request over every watched process (a whole family's). */
export function totalCpuOf(r: WrkResult): number {
  const all = (r as Partial<CpuResult>).cpuUs;
  return all ? Object.values(all).reduce((a, b) => a + b, 0) : Number.NaN;
}

/** The busier worker's share of the workers' CPU in a run (0.5: even between two); NaN with one. */
export function busierShareOf(r: WrkResult): number {
  const all = (r as Partial<CpuResult>).cpuUs ?? {};
  const w = Object.entries(all)
    .filter(([k]) => /^w\d+$/.test(k))
    .map(([, v]) => v);
  if (w.length < 2) return Number.NaN;
  return Math.max(...w) / w.reduce((a, b) => a + b, 0);
}
