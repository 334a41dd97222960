import type { Activator } from '../activation/activator.js';
import type { InstanceChooser } from '../activation/chooser.js';
import { redactUrl } from '../registry/mongo-registry.js';
import type { FarmRegistry } from '../registry/registry.js';
import { formatProblem } from '../registry/types.js';
import type { CertificateStore } from '../router/accepting/tls.js';
import { every } from '../util/every.js';
import type { Logger } from '../util/log.js';
import { oneAtATime } from '../util/one-at-a-time.js';
import { AuditFollow } from './audit-follow.js';
import { AuditSchedule } from './audit-schedule.js';
import { Heartbeat } from './heartbeat.js';
import { applyReload, type ServingMode } from './mode.js';

/** A node whose record is this many beats old is taken for dead by the others. */
const HEARTBEAT_TTL_BEATS = 5;

export interface FarmModeOptions {
  registry: FarmRegistry;
  /** The MongoDB URL, for log lines (credentials are not shown). */
  url: string;
  activator: Activator;
  instances: Pick<InstanceChooser, 'updateRemote'>;
  certs: CertificateStore;
  log: Logger;
  /** This node's address in the registry. */
  advertise: string;
  pollMs: number;
  heartbeatMs: number;
}

/**
 * Serving the farm's registry: this node beats, reads what changed in the registry every
 * `pollMs` (apps, and where every app's instances run) off the request path, and follows change
 * streams where the server has them; the node that holds the farm's chores also audits the
 * registry for edits made outside arr, and every node reads what an audit found as soon as it
 * is recorded. While the registry is unreachable the last picture keeps
 * serving; one line says so, one that it is back.
 */
export class FarmMode implements ServingMode {
  private readonly heartbeat: Heartbeat;
  private readonly audits: AuditSchedule;
  private readonly follow: AuditFollow;
  private readonly ttlMs: number;
  private failing = false;
  /** The next read is of every document (a reload), not of what changed. */
  private everything = false;
  private stops: (() => void)[] = [];
  /** Reads the registry now; calls during a read make one more read after it. */
  readonly sync = oneAtATime(() => this.read());

  constructor(private readonly o: FarmModeOptions) {
    this.ttlMs = HEARTBEAT_TTL_BEATS * o.heartbeatMs;
    this.heartbeat = new Heartbeat({
      registry: o.registry,
      activator: o.activator,
      self: o.advertise,
      ttlMs: this.ttlMs,
      log: o.log,
    });
    this.audits = new AuditSchedule({
      registry: o.registry,
      pollMs: o.pollMs,
      log: o.log,
      found: () => void this.sync(),
    });
    this.follow = new AuditFollow({
      registry: o.registry,
      pollMs: o.pollMs,
      covered: () => void this.sync(),
    });
  }

  /**
   * Beats before serving, so that no other node takes this one for dead; then drops the entries
   * of an earlier run of this node: they point at instances that died with it.
   */
  async beforeServing(): Promise<void> {
    await this.o.registry.beat(this.o.advertise, this.ttlMs);
    const stale = await this.o.registry.releaseMachine(this.o.advertise);
    if (stale > 0) this.o.log.info(`removed ${stale} stale instance entries of ${this.o.advertise}`);
  }

  startBackground(): void {
    const { registry, pollMs, heartbeatMs, log } = this.o;
    this.stops.push(
      every(pollMs, this.sync),
      every(heartbeatMs, this.heartbeat.tick),
      every(this.audits.tickMs, this.audit),
      every(pollMs, this.followAudits),
    );
    // Change streams, where the server has them, make changes take effect at once; polling
    // stays as the backstop (and is all there is on a single server or FerretDB).
    this.stops.push(
      registry.watchChanges(
        () => void this.sync(),
        (why) => log.info(`registry: no change streams (${why}); polling every ${pollMs / 1000} s`),
      ),
    );
  }

  stopBackground(): void {
    for (const stop of this.stops) stop();
    this.stops = [];
  }

  /** SIGHUP: everything read again, at once (an edit made outside arr is taken before any audit finds it). */
  reload(): Promise<void> {
    this.everything = true;
    return this.sync();
  }

  /** This node's entries, chores and liveness record go: the farm need not wait for them to expire. */
  async afterStopping(): Promise<void> {
    await this.o.registry.releaseChores(this.o.advertise).catch(() => {});
    await this.o.registry.releaseMachine(this.o.advertise).catch(() => 0);
    await this.o.registry.forgetNode(this.o.advertise).catch(() => {});
  }

  /** The holder of the chores looks for edits made outside arr (see AuditSchedule). */
  private readonly audit = async (): Promise<void> => {
    try {
      await this.audits.tick(this.heartbeat.holdsChores);
    } catch (err) {
      // The poll reports an unreachable registry; nothing to add.
      this.o.log.debug({ err: (err as Error).message }, 'registry audit failed');
    }
  };

  /** Every node follows the audit of writes made outside arr (see AuditFollow). */
  private readonly followAudits = async (): Promise<void> => {
    try {
      await this.follow.tick();
    } catch (err) {
      // The poll reports an unreachable registry; nothing to add.
      this.o.log.debug({ err: (err as Error).message }, 'following the registry audit failed');
    }
  };

  private async read(): Promise<void> {
    const { registry, log } = this.o;
    try {
      const everything = this.everything;
      this.everything = false;
      const report = await registry.refresh(everything).catch((err: unknown) => {
        this.everything ||= everything;
        throw err;
      });
      if (report.changed) {
        for (const p of report.problems) log.warn(`registry: ${formatProblem(p)}`);
        applyReload(this.o, report.apps, `MongoDB ${redactUrl(this.o.url)}`);
      }
      if (report.instancesChanged) this.o.instances.updateRemote(registry.knownAddresses());
      if (this.failing) {
        this.failing = false;
        log.info('registry reachable again');
      }
    } catch (err) {
      if (!this.failing) {
        this.failing = true;
        log.error(
          { err: (err as Error).message },
          'registry unreachable: serving known apps and instances from memory; new activations get 503',
        );
      }
    }
  }
}
