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
