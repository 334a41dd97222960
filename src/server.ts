import { Activator } from './activation/activator.js';
import { PortAllocator } from './activation/port-allocator.js';
import type { ArrConfig } from './config.js';
import { FileRegistry } from './registry/file-registry.js';
import { MongoRegistry } from './registry/mongo-registry.js';
import type { Registry } from './registry/registry.js';
import { formatProblem } from './registry/types.js';
import { Dispatcher } from './router/dispatcher.js';
import { boundPort, listen } from './router/listeners.js';
import { Router } from './router/router.js';
import { CertificateStore } from './router/tls.js';
import type { Logger } from './util/log.js';

/** How long in-flight requests and WebSockets get to finish on SIGINT/SIGTERM. */
const SHUTDOWN_GRACE_MS = 10_000;

/** A MongoDB URL fit for a log line: credentials replaced. */
export function redactUrl(url: string): string {
  return url.replace(/\/\/[^@/]*@/, '//***@');
}

export async function startArr(config: ArrConfig, log: Logger): Promise<{ stop(): Promise<void> }> {
  const registry: Registry = config.mongo ? new MongoRegistry(config.mongo) : new FileRegistry(config.apps);
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

  if (config.mongo) {
    // Entries from an earlier run of this node point at instances that died with it.
    const stale = await registry.releaseMachine(config.advertise);
    if (stale > 0) log.info(`removed ${stale} stale instance entries of ${config.advertise}`);
  }

  const activator = new Activator(registry, new PortAllocator(config.range), log, {
    advertise: config.advertise,
    startTimeoutMs: config.startTimeoutMs,
  });
  const dispatcher = new Dispatcher(activator, registry, log);
  const certs = new CertificateStore(registry, log);
  let sslPort = config.sslport;
  const router = new Router(registry, dispatcher, log, () => sslPort);
  const listeners = await listen(router, certs, config);
  sslPort = boundPort(listeners.https);
  const where = config.bind ?? '*';
  log.info(
    `arr listening on http://${where}:${boundPort(listeners.http)} and https://${where}:${sslPort}, advertising ${config.advertise}`,
  );

  let stopping: Promise<void> | undefined;
  const stop = () => {
    stopping ??= (async () => {
      log.info('arr stopping: no new connections; finishing what is in flight');
      const closed = listeners.stopAccepting();
      await listeners.drain(SHUTDOWN_GRACE_MS);
      await closed;
      router.close();
      await activator.stopAll();
      if (config.mongo) await registry.releaseMachine(config.advertise).catch(() => 0);
      await registry.close().catch(() => {});
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
