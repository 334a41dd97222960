import type { Logger } from '../util/log.js';
import { Channel, parentPipe } from '../workers/channel.js';
import { Balancer, type BalancerOptions, ListenError } from './balancer.js';
import type { RouteConfig } from './config.js';
import { WORKER_NUMBER_ENV } from './primary.js';
import { type HealthChange, SharedBackend } from './shared-health.js';

/**
 * Names this process `name` in `ps`; false when the title is cut. Linux keeps the title in the
 * memory of the process's command line, so a title longer than that is cut short; a worker's
 * command line is Node's absolute path and the script's (node:cluster forks `execPath argv[1]
 * ...`), longer than any "nlb worker N".
 */
function setTitle(name: string): boolean {
  process.title = name;
  return process.title === name;
}

/**
 * One worker of `nlb --workers N`: the balancer of a single process, listening on the routes'
 * ports through node:cluster, with its backends' health kept by the primary (shared-health.ts).
 * Its round robin is its own, starting at backend k - 1 for worker k. It stops when the primary
 * says so (or on its own SIGTERM/SIGINT, which a terminal's Ctrl-C sends to the whole group),
 * and exits when the primary is gone (node:cluster's default).
 */
export async function serveAsWorker(
  routes: RouteConfig[],
  options: BalancerOptions,
  log: Logger,
  graceMs: number,
  configName: string,
): Promise<void> {
  const number = Number(process.env[WORKER_NUMBER_ENV]) || 1;
  const title = `nlb worker ${number}`;
  const whole = setTitle(title);
  const wlog = log.child({ worker: number });
  if (!whole) wlog.warn(`the process title "${title}" is cut short in ps (the command line is shorter)`);

  const channel = new Channel(parentPipe());
  const shared: SharedBackend[][] = routes.map(() => []);
  const tell = (change: HealthChange) => channel.note('health', change);
  const balancer = new Balancer(
    routes,
    {
      ...options,
      backendFor: (cfg, route, index) => {
        const b = new SharedBackend(cfg, route, index, tell);
        shared[route - 1]![index] = b;
        return b;
      },
      firstTurn: number - 1,
      announce: number === 1,
    },
    wlog,
  );
  channel.on<HealthChange>('health', ({ route, backend, down }) => {
    const b = shared[route - 1]?.[backend];
    if (!b || b.down === down) return;
    b.down = down;
    if (balancer.verbose)
      wlog.debug(
        { route, backend: b.label, down },
        `backend ${b.label} marked ${down ? 'down' : 'up'} by the primary`,
      );
  });

  let stopping = false;
  const stop = () => {
    if (stopping) {
      balancer.hurry();
      return;
    }
    stopping = true;
    void balancer.shutdown(graceMs).then(() => process.exit(0));
  };
  channel.on('stop', () => {
    if (!stopping) stop();
  });
  channel.on('hurry', () => balancer.hurry());
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);

  try {
    await balancer.listen();
  } catch (err) {
    if (!(err instanceof ListenError)) throw err;
    // Written to the pipe before exiting; the primary reads it before it sees the pipe close.
    channel.note('listen-failed', { message: `${configName}: ${err.message}` });
    process.exit(1);
  }
  channel.note('ready');
}
