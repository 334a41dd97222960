import { type App, deployKey, sameInstanceAddress } from '../registry/types.js';
import type { Logger } from '../util/log.js';
import { backoffWait } from './backoff.js';
import { type Clock, sleep } from './clock.js';
import type { AppRecord, AppTable, Instance } from './instances.js';
import type { ExitStatus, Launcher } from './launcher.js';
import type { Slots } from './slots.js';
import { type Activation, ActivationError, type Target } from './target.js';

/**
 * Rolling replacement: an instance of this node whose app has another version in the registry
 * now (its process, env, cwd, ready, user, group or revision changed) is replaced by a new one,
 * one app at a time, with at most one extra instance per app.
 */

export interface DeployOptions {
  /** `--drain`: how long a replaced instance keeps its WebSockets (and requests in flight). */
  drainMs: number;
  /**
   * In a farm: how long a replaced instance lives at least, so that the other nodes, which send
   * their requests straight to it, learn of its successor first (a few polls).
   */
  lingerMs: number;
  /** The app as the registry has it now. */
  currentApp: (appId: string) => App | undefined;
  /** A replacement failed in a way that counts for the back-off. */
  failed: (appId: string) => void;
  /** A replaced instance drains: connections kept to it go once idle (`graceful`). */
  gone?: (target: Target, graceful?: boolean) => void;
  /** What happens when an instance exits (the activator's bookkeeping). */
  onExit: (instance: Instance, exit: ExitStatus) => void;
  /** A rolling replacement ended: the new version serves, or it failed (and the old one serves). */
  deployed?(app: App, result: 'replaced' | 'failed', detail?: string): void;
}

export class Deploys {
  constructor(
    private readonly table: AppTable,
    private readonly launcher: Launcher,
    private readonly slots: Slots,
    private readonly clock: Clock,
    private readonly log: Logger,
    private readonly options: DeployOptions,
  ) {}

  /** Replaces the app's instance when the registry has another version of it (see loop). */
  redeploy(appId: string): void {
    if (this.table.stopping) return;
    const record = this.table.of(appId);
    if (record.deploy) {
      record.deployAgain = true;
      return;
    }
    const instance = record.serving;
    const app = this.options.currentApp(appId);
    if (!instance || !app || (deployKey(app) === instance.key && !record.renewal)) {
      this.table.tidy(record);
      return;
    }
    record.deploy = this.loop(record)
      .catch((err: unknown) => this.log.error({ id: appId, err: String(err) }, `deploy of ${appId} failed`))
      .finally(() => {
        record.deploy = undefined;
        const again = record.deployAgain;
        record.deployAgain = undefined;
        this.table.tidy(record);
        if (again) this.redeploy(appId);
      });
  }

  /** No replacement waits for its back-off any more (arr is stopping). */
  cancelRetries(): void {
    for (const record of this.table.all()) {
      record.deployRetry?.();
      record.deployRetry = undefined;
    }
  }

  /**
   * Rolling replacement of one app's instance, until it runs the registry's version: a new
   * instance on a new port, ready; the registry entry (the slot) moved to it; new requests and
   * WebSockets sent to it; the old one drained and stopped. At most one extra instance at a
   * time: a further change waits for the drain. A version that fails is tried again only
   * after the back-off.
   */
  private async loop(record: AppRecord): Promise<void> {
    for (;;) {
      record.deployAgain = undefined;
      const old = record.serving;
      const app = this.options.currentApp(record.id);
      if (this.table.stopping || !old || !app) return;
      const key = deployKey(app);
      if (key === old.key && !record.renewal) return;
      const wait = backoffWait(record.failures, this.clock.now());
      if (wait > 0) {
        this.retryIn(record, wait);
        return;
      }
      if (!(await this.replace(record, old, app))) {
        this.retryIn(record, Math.max(0, backoffWait(record.failures, this.clock.now())));
        return;
      }
    }
  }

  /** Tries the app's replacement again after the back-off. */
  private retryIn(record: AppRecord, ms: number): void {
    record.deployRetry?.();
    record.deployRetry = this.clock.after(
      ms,
      () => {
        record.deployRetry = undefined;
        this.redeploy(record.id);
      },
      true,
    );
  }

  /** One replacement; false when the new version did not come to serve (the old one still does). */
  private async replace(record: AppRecord, old: Instance, app: App): Promise<boolean> {
    const began = this.clock.now();
    this.log.info(
      { event: 'deploy-started', app: app.name, id: app.id, pid: old.proc.pid },
      `deploying ${app.name}: starting its new version beside ${app.name}[${old.proc.pid}]`,
    );
    // Should the old instance go meanwhile, requests wait for the new one rather than start a third.
    let settle!: (a: Promise<Activation>) => void;
    const successor = new Promise<Activation>((r) => {
      settle = r;
    });
    successor.catch(() => {});
    record.successor = successor;
    let launched: Instance | undefined;
    try {
      launched = await this.launcher.launch(app, this.options.onExit);
      const { target } = launched;
      const notMoved = await this.slots.move(app, old.target.machine, target.machine);
      if (notMoved !== undefined) {
        this.options.failed(app.id);
        throw new ActivationError('unavailable', 'no instance is available', notMoved);
      }
      if (launched.exited.aborted || this.table.stopping) {
        await this.slots.releaseNow(app.id, target.machine);
        throw new ActivationError(
          'failed',
          'the application exited while starting',
          'it exited right after start',
        );
      }
      // The switch: from here on, new requests and WebSockets go to the new instance.
      this.table.generation++;
      const current = record.serving;
      this.table.serve(record, launched);
      record.successor = undefined;
      settle(Promise.resolve({ kind: 'local', target }));
      record.failures = undefined;
      this.log.info(
        {
          event: 'deploy-done',
          app: app.name,
          id: app.id,
          pid: launched.proc.pid,
          port: launched.port,
          ms: this.clock.now() - began,
        },
        `${app.name} deployed: ${app.name}[${launched.proc.pid}] serves on port ${launched.port}; draining ${app.name}[${old.proc.pid}]`,
      );
      // A renewal (health, recycle) is the old instance's exit reason, not a deploy.
      const { renewal } = record;
      record.renewal = undefined;
      if (renewal) old.stoppedFor = renewal.reason;
      else this.options.deployed?.(app, 'replaced');
      this.slots.note(app, target.machine);
      if (current === old) await this.drain(record, old);
      return true;
    } catch (err) {
      if (record.successor === successor) record.successor = undefined;
      settle(Promise.reject(err));
      const proc = launched?.proc ?? (err instanceof ActivationError ? err.process : undefined);
      if (launched) void this.launcher.stop(launched, 'deploy');
      if (proc) {
        // Its last lines of output, once its pipes are read to their end (briefly).
        let cancel = () => {};
        await Promise.race([
          new Promise((r) => proc.child.once('close', r)),
          new Promise((r) => {
            cancel = this.clock.after(300, () => r(undefined));
          }),
        ]);
        cancel();
      }
      const why = err instanceof Error ? err.message : String(err);
      const output = proc && proc.recent.length > 0 ? `; its last output:\n${proc.recent.join('\n')}` : '';
      this.log.error(
        { event: 'deploy-failed', app: app.name, id: app.id, pid: old.proc.pid, output: proc?.recent },
        `deploy of ${app.name} failed: ${why}; ${app.name}[${old.proc.pid}] (the previous version) keeps serving${output}`,
      );
      this.options.deployed?.(app, 'failed', why);
      this.slots.note(app, old.target.machine, why);
      return false;
    }
  }

  /**
   * A replaced instance finishes what it serves: it is stopped once nothing is in flight there
   * (requests, WebSockets), or when the drain period is over, whichever comes first. In a farm
   * it lives at least the linger: the other nodes send their requests and WebSockets straight to
   * it, unseen by this node's counters, until they learn of its successor; after that, nothing
   * is in flight there once no connection to its port is open (other nodes close their idle
   * ones to it when they learn, as this node does now). Its WebSockets still open at the end of
   * the drain are closed with it (SIGTERM: apps say goodbye; then arr).
   */
  private async drain(record: AppRecord, old: Instance): Promise<void> {
    const began = this.clock.now();
    const { lingerMs } = this.options;
    const deadline = began + Math.max(this.options.drainMs, lingerMs);
    const a = old.target.activity;
    this.table.setState(old, 'draining');
    this.options.gone?.(old.target, true);
    for (let look = began + lingerMs; !old.exited.aborted && !this.table.stopping; ) {
      const now = this.clock.now();
      if (now >= deadline) break;
      if (!a || a.active <= 0) {
        if (lingerMs === 0) break;
        if (now >= look) {
          if ((await this.launcher.openConnections(old)) === 0) break;
          look = this.clock.now() + 250;
        }
      }
      await sleep(this.clock, 25);
    }
    if (this.table.stopping) return; // stopAll stops it
    const open = old.target.webSockets?.size ?? 0;
    this.log.info(
      { event: 'instance-replaced', app: old.app.name, id: old.app.id, pid: old.proc.pid },
      `stopping ${old.app.name}[${old.proc.pid}]: replaced${open > 0 ? ` (${open} WebSockets still open after the drain are closed)` : ''}`,
    );
    // Its registry entry, should it still be listed (its slot moved already).
    const now = record.serving;
    if (!now || !sameInstanceAddress(now.target.machine, old.target.machine)) this.slots.release(old);
    await this.launcher.stop(old, 'deploy');
    for (const socket of old.target.webSockets ?? []) socket.end();
  }
}
