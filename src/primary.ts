import { ActivationError, type Target } from './activation/target.js';
import type { ArrConfig } from './config.js';
import { type Core, openCore } from './core.js';
import { reloader } from './lifecycle.js';
import type { ServiceNotifier } from './ops/systemd.js';
import type { InstanceAddress, Problem } from './registry/types.js';
import { SessionTickets } from './router/accepting/session-tickets.js';
import { type RunningArr, runningArr } from './server.js';
import { SHUTDOWN_GRACE_MS, stopInOrder } from './stop-order.js';
import type { Logger } from './util/log.js';
import { ActivityBoard } from './workers/activity-board.js';
import {
  type ActivateAnswer,
  type ActivityRow,
  ASK,
  type Hello,
  type InstanceKey,
  TO_PRIMARY,
  TO_WORKER,
} from './workers/messages.js';
import { type WorkerHandle, WorkerPool } from './workers/pool.js';
import { TableSender } from './workers/worker-registry.js';

/** How long a worker has to say how busy an instance is before an idle stop (else it is kept). */
const IDLE_ASK_MS = 2_000;

/**
 * Starts arr's primary (`--workers N`, N >= 1): the state side (core.ts: registry, activator,
 * ACME, admin endpoint, the mode's background work) and N worker processes (worker.ts) that
 * carry the traffic. The primary answers the workers' asks for instances, tells them when an
 * instance stops taking exchanges, is gone or drains, and sends them the app table and the TLS
 * session ticket keys; it adds up their activity summaries for the idle stop and the drains.
 */
export async function startPrimary(
  config: ArrConfig,
  log: Logger,
  notifier?: ServiceNotifier,
): Promise<RunningArr> {
  process.title = 'arr primary';
  const board = new ActivityBoard();
  const table = new TableSender();
  let tickets: string | undefined;
  let remote: [string, InstanceAddress[]][] = [];
  // Made before the core, so that what the core tells during its start reaches every worker.
  const pool = new WorkerPool(config.workers, log, {
    welcome: (h) => answerWorker(h),
    gone: (h) => board.workerGone(h.worker.id),
  });
  const key = (t: Target): InstanceKey => ({ appId: t.appId, port: t.port });
  const core: Core = await openCore(config, log, {
    onInstanceGone(target, graceful) {
      if (!target.local) return; // the farm's instances elsewhere: the workers' choosers follow the polls
      if (graceful)
        board.draining(
          target,
          pool
            .everyWorker()
            .filter((h) => h.welcomed)
            .map((h) => h.worker.id),
        );
      else board.forget(target);
      pool.broadcast(TO_WORKER.gone, { ...key(target), graceful: !!graceful });
    },
    onUnserved: (target) => pool.broadcast(TO_WORKER.unserved, key(target)),
    confirmIdle: async (target) => {
      await Promise.all(
        pool.handles().map(async (h) => {
          const row = await h.channel.ask<ActivityRow>(ASK.idle, key(target), IDLE_ASK_MS);
          board.report(h.worker.id, [row]);
        }),
      );
      return true;
    },
    onApply(applied) {
      pool.broadcast(TO_WORKER.apps, table.update(applied));
    },
    onRemote(all) {
      remote = [...all];
      pool.broadcast(TO_WORKER.remote, remote);
    },
    workers: {
      serving: () => pool.serving(),
      counting: () =>
        pool
          .everyWorker()
          .filter((h) => h.welcomed)
          .map((h) => h.channel),
      messages: () => pool.messageCounts(),
    },
    onCertificate: (host, pem) => pool.broadcast(TO_WORKER.certificate, { host, ...pem }),
  });
  const { registry, ops, acme, activator, mode, state } = core;

  /** What a worker may ask and tell the primary. */
  function answerWorker(h: WorkerHandle): void {
    h.channel
      .on(ASK.hello, (): Hello => {
        h.welcomed = true;
        const challenges = config.acme?.challenges;
        const acmeOn = challenges && {
          http01: challenges.includes('http-01'),
          alpn: challenges.includes('tls-alpn-01'),
        };
        return {
          kind: registry.kind,
          docs: table.full(),
          tickets,
          remote,
          sockets: config.sockets,
          acme: acmeOn,
        };
      })
      .on(ASK.table, () => table.full())
      .on<{ host: string }>(ASK.acmeCertificate, async ({ host }) => {
        const rule = registry.route(host)?.rule;
        if (!acme || !rule) return null;
        await acme.contextFor(host, rule); // orders one now when it qualifies, as a handshake does
        return acme.certificateOf(host) ?? null;
      })
      .on<{ host: string; token: string }>(
        ASK.acmeHttp,
        async ({ host, token }) => (await acme?.httpChallenge(host, token)) ?? null,
      )
      .on<{ host: string }>(ASK.acmeAlpn, async ({ host }) => (await acme?.alpnChallengePem(host)) ?? null)
      .on<InstanceKey>(ASK.activate, ({ appId }) => activate(appId))
      .on<InstanceKey & { why: string }>(TO_PRIMARY.evict, ({ appId, why, port }) =>
        activator.evict(appId, why, port),
      )
      .on<{ appId: string; machine: InstanceAddress }>(TO_PRIMARY.release, ({ appId, machine }) => {
        registry.release(appId, machine).catch((err: unknown) => {
          log.error({ app: appId, err: String(err) }, 'could not remove an unreachable instance');
        });
      })
      .on<ActivityRow[]>(TO_PRIMARY.activity, (rows) => board.report(h.worker.id, rows));
  }

  async function activate(appId: string): Promise<ActivateAnswer> {
    const app = registry.app(appId);
    try {
      if (!app)
        throw new ActivationError('unavailable', 'The service is not available now.', `no app ${appId} now`);
      const activation = await activator.activate(app);
      if (activation.kind === 'remote') return activation;
      const t = activation.target;
      board.track(t);
      return { kind: 'local', target: { appId: t.appId, machine: t.machine, host: t.host, port: t.port } };
    } catch (err) {
      if (err instanceof ActivationError)
        return {
          kind: 'failed',
          failure: err.kind,
          publicMessage: err.publicMessage,
          detail: err.message,
          retryAfterSeconds: err.retryAfterSeconds,
        };
      log.error({ app: appId, err: String(err) }, 'activation failed');
      return {
        kind: 'failed',
        failure: 'failed',
        publicMessage: 'The service could not be started.',
        detail: String(err),
      };
    }
  }

  // The ticket keys every worker uses: ACME's store's (shared by the farm), else the primary's own.
  const keys = core.tickets ?? new SessionTickets({ ticketKeys: async (_period, fresh) => fresh }, log);
  if (!core.tickets) await keys.load();
  keys.start((k) => {
    tickets = k.toString('base64');
    pool.broadcast(TO_WORKER.tickets, tickets);
  }, config.pollMs);

  try {
    await pool.start();
  } catch (err) {
    await activator.stopAll();
    state.close();
    throw err;
  }
  acme?.start();
  mode.startBackground();
  const stopIdleWatch = activator.watchIdle();
  const stopInstanceWatch = activator.watchInstances();

  const onStartProblems = (problems: Problem[]) => ops.noteStartProblems(problems);
  const reload = reloader({
    config,
    log,
    listeners: { setDefaultCertificate: () => {} }, // each new worker reads --cert and --key
    certs: core.certs,
    mode,
    registry,
    notifier,
    onStartProblems,
    replaceWorkers: () => pool.replaceAll(SHUTDOWN_GRACE_MS, config.drainMs),
  });
  const stop = stopInOrder({
    log,
    notifier,
    ops,
    mode,
    acme,
    tickets: keys,
    stopWatches: () => {
      stopIdleWatch();
      stopInstanceWatch();
    },
    traffic: {
      stopAccepting: async () => {},
      settled: (deadline) => pool.settle(deadline),
      end: (lingerMs) => pool.end(lingerMs),
      close: () => {},
    },
    activator,
    state,
    registry,
  });
  return runningArr({ config, log, registry, notifier, onStartProblems }, stop, reload, () => {
    const first = pool.handles()[0]?.ports;
    return {
      port: first?.port ?? config.port,
      sslport: first?.sslport ?? config.sslport,
      more: `, ${config.workers} worker${config.workers === 1 ? '' : 's'}`,
    };
  });
}
