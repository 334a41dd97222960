import type { CertificatePem } from './acme/manager.js';
import { type AcmeAsker, RemoteCertificates } from './acme/remote-certificates.js';
import { InstanceChooser } from './activation/chooser.js';
import type { Target } from './activation/target.js';
import type { ArrConfig } from './config.js';
import { WorkerOps } from './ops/worker-ops.js';
import type { InstanceAddress } from './registry/types.js';
import { boundPort, openListeners } from './router/accepting/listeners.js';
import { OpenWebSockets } from './router/accepting/open-websockets.js';
import { CertificateStore } from './router/accepting/tls.js';
import { openEngines, openRouter } from './server.js';
import type { Logger } from './util/log.js';
import { Channel, parentPipe } from './workers/channel.js';
import { ASK, type Hello, type SettleBody, TO_PRIMARY, TO_WORKER } from './workers/messages.js';
import { WORKER_NUMBER_ENV } from './workers/pool.js';
import { WorkerInstances } from './workers/worker-instances.js';
import { WorkerRegistry } from './workers/worker-registry.js';

/** How long a retired worker leaves its clients' idle keep-alive connections open for a last request. */
const RETIRE_IDLE_MS = 5_000;

/** How long a worker waits for the primary's hello before it gives up (the primary is gone). */
const HELLO_MS = 30_000;

/**
 * One worker process of arr (`--workers N`): the listeners (TLS and SNI, HTTP/1.1, HTTP/2,
 * WebSockets, PROXY headers), the router and its engines, over an in-memory copy of the app
 * table the primary sends. Instances come from the primary (worker-instances.ts), asked once
 * per app; nothing crosses to the primary per request. Signals are the primary's: it tells
 * the worker when to stop accepting, settle, and end.
 */
export async function startWorker(config: ArrConfig, parentLog: Logger): Promise<void> {
  const number = Number(process.env[WORKER_NUMBER_ENV]);
  process.title = `arr worker ${number}`;
  const log = parentLog.child({ worker: number });
  // The primary handles SIGINT, SIGTERM and SIGHUP (a terminal or a unit sends them to the group).
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) process.on(signal, () => {});
  const channel = new Channel(parentPipe());
  // The observer (this worker's counters and traffic, its access-log lines), ready for the
  // primary's asks for them as soon as it knows of this worker.
  const ops = new WorkerOps(config, log, `worker ${number}`);
  ops.answer(channel);
  const hello = await channel.ask<Hello>(ASK.hello, {}, HELLO_MS);
  const registry = new WorkerRegistry(hello.kind, (appId, machine) =>
    channel.note(TO_PRIMARY.release, { appId, machine }),
  );
  registry.take(hello.docs);
  const { http, h2c } = openEngines(config);
  const closeConnections = (target: Target, graceful = false) => {
    http.closeConnections(target, graceful);
    h2c.closeConnections(target, graceful);
  };
  const source = new WorkerInstances(channel, {
    askTimeoutMs: config.startTimeoutMs + 15_000,
    gone(target, graceful) {
      closeConnections(target, graceful);
      if (!graceful) for (const s of target.webSockets ?? []) s.end();
    },
  });
  const instances = new InstanceChooser(source, registry, log, config.advertise, closeConnections);
  instances.updateRemote(new Map(hello.remote));
  const acme = hello.acme && new RemoteCertificates(acmeAsker(channel, config.startTimeoutMs));
  const certs = new CertificateStore(registry, log, acme);
  channel.on<CertificatePem & { host: string }>(TO_WORKER.certificate, ({ host, ...pem }) =>
    acme?.take(host, pem),
  );
  channel
    .on<string>(TO_WORKER.apps, (table) => {
      try {
        registry.take(table);
      } catch (err) {
        // This worker's copy and the primary's differ: the table in place serves until the whole one comes.
        log.error(
          { err: (err as Error).message },
          'app table change not applied; asking the primary for all of it',
        );
        channel
          .ask<string>(ASK.table, {}, HELLO_MS)
          .then((whole) => registry.take(whole))
          .catch((e: Error) => log.error({ err: e.message }, 'the whole app table could not be applied'));
      }
      certs.clear();
    })
    .on<[string, InstanceAddress[]][]>(TO_WORKER.remote, (all) => instances.updateRemote(new Map(all)));

  const listeners = await openListeners(certs, {
    ...config,
    sockets: hello.sockets,
    alpnChallenge: acme && hello.acme?.alpn ? (host) => acme.alpnChallenge(host) : undefined,
  });
  const setTickets = (keys: string) => listeners.https.setTicketKeys(Buffer.from(keys, 'base64'));
  if (hello.tickets) setTickets(hello.tickets);
  channel.on<string>(TO_WORKER.tickets, setTickets);
  const router = openRouter(config, listeners, {
    registry,
    instances,
    log,
    http,
    h2c,
    observer: ops.observer,
    challenges: acme && hello.acme?.http01 ? acme : undefined,
    certificates: certs,
  });
  const webSockets = new OpenWebSockets([listeners.http, listeners.https], listeners.h2);

  let closed: Promise<void> | undefined;
  const exit = () => {
    source.close();
    router.close();
    channel.close();
    setImmediate(() => process.exit(0));
  };
  // arr stops: no new connections; answered once no request is in flight (then `end`).
  // A reload retires the worker instead: answered at once, it finishes on its own and exits.
  channel.on<SettleBody>(ASK.settle, async ({ graceMs, retireMs }) => {
    if (retireMs !== undefined) {
      if (closed) return;
      closed = listeners.retire();
      void retire(closed, graceMs, retireMs);
      return;
    }
    closed ??= listeners.stopAccepting();
    await webSockets.httpSettled(Date.now() + graceMs);
    source.summarise();
  });
  /**
   * A retired worker's clients end their keep-alive connections after their next answer
   * (Connection: close); those idle for RETIRE_IDLE_MS are closed then. Its WebSockets are kept
   * until they close or the drain (`retireMs`) ends; then it exits.
   */
  const retire = async (closing: Promise<void>, graceMs: number, retireMs: number) => {
    const start = Date.now();
    await webSockets.httpSettled(start + Math.min(RETIRE_IDLE_MS, retireMs), false);
    await webSockets.httpSettled(Date.now() + graceMs);
    let timer: NodeJS.Timeout | undefined;
    await Promise.race([
      closing,
      new Promise((r) => (timer = setTimeout(r, Math.max(0, start + retireMs - Date.now())))),
    ]);
    clearTimeout(timer);
    webSockets.endAll();
    await listeners.drain(1_000);
    exit();
  };
  channel.on<{ lingerMs: number }>(ASK.end, async ({ lingerMs }) => {
    closed ??= listeners.stopAccepting();
    webSockets.endAll();
    await listeners.drain(lingerMs);
    exit();
  });
  channel.note(TO_PRIMARY.serving, { port: boundPort(listeners.http), sslport: listeners.httpsPort });
}

/** ACME's side of the primary, asked over the channel (rare: a host's first handshake, a CA's challenge). */
function acmeAsker(channel: Channel, startTimeoutMs: number): AcmeAsker {
  // An order may take a while; a handshake waits for it up to the manager's on-demand bound.
  const orderMs = Math.max(startTimeoutMs, 30_000);
  return {
    certificate: (host) => channel.ask(ASK.acmeCertificate, { host }, orderMs),
    httpChallenge: (host, token) => channel.ask(ASK.acmeHttp, { host, token }, 10_000),
    alpnChallenge: (host) => channel.ask(ASK.acmeAlpn, { host }, 10_000),
  };
}
