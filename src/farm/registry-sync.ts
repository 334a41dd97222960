import type { Activator } from '../activation/activator.js';
import type { Registry } from '../registry/registry.js';
import { formatProblem } from '../registry/types.js';
import type { Dispatcher } from '../router/dispatcher.js';
import type { CertificateStore } from '../router/tls.js';
import type { Logger } from '../util/log.js';

/**
 * Keeps this node's picture of the shared registry current: apps (routes, certificates, caps)
 * and where every app's instances run, read every few seconds off the request path. While the
 * registry is unreachable the last picture keeps serving; one line says so, one that it is back.
 */
export class RegistrySync {
  private failing = false;

  constructor(
    private readonly registry: Registry,
    private readonly dispatcher: Dispatcher,
    private readonly activator: Activator,
    private readonly certs: CertificateStore,
    private readonly log: Logger,
  ) {}

  private running: Promise<void> | undefined;
  private again = false;

  /** Reads the registry now; calls that come during a read coalesce into one more read. */
  readonly tick = async (): Promise<void> => {
    if (this.running) {
      this.again = true;
      return this.running;
    }
    this.running = (async () => {
      do {
        this.again = false;
        await this.read();
      } while (this.again);
    })().finally(() => {
      this.running = undefined;
    });
    return this.running;
  };

  private async read(): Promise<void> {
    try {
      const report = await this.registry.load();
      if (report.changed) {
        this.certs.clear();
        for (const p of report.problems) this.log.warn(`registry: ${formatProblem(p)}`);
        this.activator.evictMissing(new Set([...this.registry.apps()].map((a) => a.id)));
        this.log.info(`registry changed: ${report.apps} apps`);
      }
      this.dispatcher.updateRemote(await this.registry.allMachines());
      if (this.failing) {
        this.failing = false;
        this.log.info('registry reachable again');
      }
    } catch (err) {
      if (!this.failing) {
        this.failing = true;
        this.log.error(
          { err: (err as Error).message },
          'registry unreachable: serving known apps and instances from memory; new activations get 503',
        );
      }
    }
  }
}
