import { Activator } from './activation/activator.js';
import { PortAllocator } from './activation/port-allocator.js';
import type { ArrConfig } from './config.js';
import { watchAppsFile } from './farm/file-watch.js';
import { Heartbeat } from './farm/heartbeat.js';
import { RegistrySync } from './farm/registry-sync.js';
import { Operations } from './ops/ops.js';
import { FileRegistry } from './registry/file-registry.js';
import { MongoRegistry } from './registry/mongo-registry.js';
import type { Registry } from './registry/registry.js';
import { formatProblem } from './registry/types.js';
import { Dispatcher } from './router/dispatcher.js';
import { boundPort, listen } from './router/listeners.js';
import { OpenWebSockets } from './router/open-websockets.js';
import { Router } from './router/router.js';
import { CertificateStore } from './router/tls.js';
import { every } from './util/every.js';
import type { Logger } from './util/log.js';

/** A node whose record is this many beats old is taken for dead by the others. */
const HEARTBEAT_TTL_BEATS = 5;

/** How long in-flight requests get to finish on SIGINT/SIGTERM. */
const SHUTDOWN_GRACE_MS = 10_000;

/** How long a WebSocket ended on SIGINT/SIGTERM has to close before its connection is cut. */
const WEBSOCKET_LINGER_MS = 1_000;

/** A MongoDB URL fit for a log line: credentials replaced. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

export async function startArr(config: ArrConfig, log: Logger): Promise<{ stop(): Promise<void> }> {
  const registry: Registry = config.mongo ? new MongoRegistry(config.mongo) : new FileRegistry(config.apps);
  const ops = new Operations(config, registry, log); // --admin (health, metrics), --access-log
  const source = config.mongo ? `MongoDB ${redactUrl(config.mongo)}` : config.apps;
  let report: Awaited<ReturnType<Registry['load']>>;
  try {
    report = await registry.load();
  } catch (err) {
    await registry.close().catch(() => {});
    const code = (err as NodeJS.ErrnoException).code;
    throw new Error(`cannot load the registry from ${source}: ${code ?? (err as Error).message}`);
  }
  for (const p of report.problems) log.warn(`registry: ${formatProblem(p)}`);
  log.info(`registry: ${report.apps} apps from ${source}`);

  if (registry instanceof MongoRegistry) {
    // Beat before serving, so that no other node takes this one for dead; then drop the
    // entries from an earlier run of this node: they point at instances that died with it.
    await registry.beat(config.advertise, HEARTBEAT_TTL_BEATS * config.heartbeatMs);
    const stale = await registry.releaseMachine(config.advertise);
    if (stale > 0) log.info(`removed ${stale} stale instance entries of ${config.advertise}`);
  }

  const activator = new Activator(registry, new PortAllocator(config.range), log, {
    advertise: config.advertise,
    startTimeoutMs: config.startTimeoutMs,
    idleTimeoutMs: config.idleTimeoutMs,
    onStart: ops.onStart,
  });
  const dispatcher = new Dispatcher(activator, registry, log, config.advertise);
  const certs = new CertificateStore(registry, log);
  let sslPort = config.sslport;
  const router = new Router(registry, dispatcher, log, () => sslPort, config.proxyTimeoutMs, ops.observer);
  await ops.listen(activator);
  const listeners = await listen(router, certs, config);
  sslPort = boundPort(listeners.https);
  const webSockets = new OpenWebSockets([listeners.http, listeners.https]);
  const where = config.bind ?? '*';
  log.info(
    `arr listening on http://${where}:${boundPort(listeners.http)} and https://${where}:${sslPort}, advertising ${config.advertise}`,
  );
  if (config.trustProxyProtocol)
    log.info('--trust-proxy-protocol: every connection must begin with a PROXY header; others are closed');

  const timers: (() => void)[] = [];
  if (registry instanceof MongoRegistry) {
    const sync = new RegistrySync(registry, dispatcher, activator, certs, log);
    const heartbeat = new Heartbeat(
      registry,
      activator,
      config.advertise,
      HEARTBEAT_TTL_BEATS * config.heartbeatMs,
      log,
    );
    timers.push(every(config.pollMs, sync.tick), every(config.heartbeatMs, heartbeat.tick));
    // Change streams, where the server has them, make changes take effect at once; polling
    // stays as the backstop (and is all there is on a single server or FerretDB).
    timers.push(
      registry.watchChanges(
        () => void sync.tick(),
        (why) => log.info(`registry: no change streams (${why}); polling every ${config.pollMs / 1000} s`),
      ),
    );
  } else if (registry instanceof FileRegistry) {
    timers.push(watchAppsFile(registry, activator, certs, log, { reported: report.problems }));
  }
  if (config.idleTimeoutMs > 0) {
    const idle = async () => activator.stopIdle();
    timers.push(every(Math.min(1000, config.idleTimeoutMs / 2), idle));
  }

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('arr stopping: no new connections; finishing what is in flight');
      ops.stopping();
      for (const stopTimer of timers) stopTimer();
      const closed = listeners.stopAccepting();
      // Requests in flight are answered first; WebSockets keep working meanwhile.
      await webSockets.httpSettled(Date.now() + SHUTDOWN_GRACE_MS);
      // Then the instances stop: an app that closes its WebSockets on SIGTERM (the samples send
      // 1001) says goodbye through arr. WebSockets still open after that are ended.
      await activator.stopAll();
      webSockets.endAll();
      await listeners.drain(WEBSOCKET_LINGER_MS);
      await closed;
      router.close();
      if (registry instanceof MongoRegistry) {
        await registry.releaseMachine(config.advertise).catch(() => 0);
        await registry.forgetNode(config.advertise).catch(() => {});
      }
      await registry.close().catch(() => {});
      await ops.close();
      log.info('arr stopped');
    })();
    return stopping;
  };
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      stop().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'arr did not stop cleanly');
          process.exit(1);
        },
      );
    });
  }
  return { stop };
}
