import cluster from 'node:cluster';
import { availableParallelism } from 'node:os';

/**
 * How the connections of a port shared by the workers reach them. 'rr': the primary accepts
 * every connection and hands it to the workers in turn (node:cluster's SCHED_RR); 'none': every
 * worker accepts on the shared socket and the kernel picks which (SCHED_NONE). The numbers each
 * choice rests on are in bench/decisions.md ("Spreading connections over workers"). This is the
 * one setting both commands read; NODE_CLUSTER_SCHED_POLICY=rr|none overrides it for a run.
 */
export const CONNECTION_SCHEDULING = { arr: 'rr', nlb: 'rr' } as const satisfies Record<
  string,
  'rr' | 'none'
>;

/** Applies a command's scheduling (before the first fork), unless NODE_CLUSTER_SCHED_POLICY says otherwise. */
export function useScheduling(command: keyof typeof CONNECTION_SCHEDULING): void {
  const fromEnv = process.env.NODE_CLUSTER_SCHED_POLICY;
  if (fromEnv === 'rr' || fromEnv === 'none') return; // node:cluster read it already
  cluster.schedulingPolicy = CONNECTION_SCHEDULING[command] === 'rr' ? cluster.SCHED_RR : cluster.SCHED_NONE;
}

/**
 * The value of --workers: a whole number of at least 1, or `auto` (one per core the process
 * may use, os.availableParallelism()). Returns undefined for anything else.
 */
export function workerCount(value: unknown): number | undefined {
  if (value === 'auto') return availableParallelism();
  const n = typeof value === 'number' ? value : Number(value);
  return Number.isInteger(n) && n >= 1 && String(value).trim() !== '' ? n : undefined;
}

/**
 * Names this process `name` in `ps`. Linux keeps a title in the memory of the process's
 * command line, so a title longer than the command line is cut; a worker's command line is
 * Node's absolute path and the script's (node:cluster forks `process.execPath argv[1] ...`),
 * longer than any "nlb worker N". Returns whether the whole title shows.
 */
export function setTitle(name: string): boolean {
  process.title = name;
  return process.title === name;
}
