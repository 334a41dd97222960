import type { AuditReport, FarmChores } from '../registry/registry.js';
import type { Logger } from '../util/log.js';

/**
 * An audit reads the whole registry (about 60 µs of FerretDB's CPU per document), so audits
 * are spaced by a multiple of their own duration: after writes from outside arr, at least this
 * many times (while such writes go on, the server spends at most about half its time on audits,
 * and a busy server, where audits take longer, is asked less often) ...
 */
const AFTER_WRITES_SPACING = 1;
/** ... and without any, this many times, or at least BACKSTOP_MS: a backstop, should a signal be missed. */
const BACKSTOP_SPACING = 25;
const BACKSTOP_MS = 60_000;
/** A write is counted when it starts: the audit waits this long for it to end. */
const SETTLE_MS = 100;

export interface AuditScheduleOptions {
  registry: FarmChores;
  pollMs: number;
  log: Logger;
  /** Told when an audit found changes: the node reads them at once rather than at its next poll. */
  found: () => void;
}

/**
 * When the holder of the farm's chores audits the registry for edits made outside arr. Several
 * times a poll it reads a cheap signal: the server's count of insert, update and delete
 * commands, which arr never sends (or, where the server does not tell, the number of app
 * documents, which moves with inserts and deletes only). When it moved, an audit runs (again
 * if it moved during the audit: a bulk write); otherwise a backstop audit runs now and then.
 */
export class AuditSchedule {
  private signal: number | undefined;
  /** Whether the signal is the server's write counter (else the apps count). */
  private writesCounted = true;
  private moved = false;
  /** When the last audit ended (0: none by this holder yet: one now), and how long it took. */
  private lastEnd = 0;
  private lastMs = 0;

  constructor(private readonly o: AuditScheduleOptions) {}

  /** How often `tick` should run: the signal is cheap (one small command). */
  get tickMs(): number {
    return Math.max(100, this.o.pollMs / 8);
  }

  /** Called every `tickMs`, with whether this node holds the chores. */
  async tick(holding: boolean): Promise<void> {
    if (!holding) {
      this.signal = undefined;
      this.moved = false;
      this.lastEnd = 0;
      return;
    }
    const now = await this.read();
    if (this.signal !== undefined && now !== this.signal) this.moved = true;
    this.signal = now;
    if (!this.due()) return;
    if (this.moved) await new Promise((r) => setTimeout(r, SETTLE_MS));
    const t0 = performance.now();
    const report = await this.o.registry.audit(this.writesCounted ? this.signal : undefined);
    this.lastMs = performance.now() - t0;
    this.lastEnd = Date.now();
    const after = await this.read();
    this.moved = after !== this.signal;
    this.signal = after;
    this.tell(report);
  }

  private async read(): Promise<number> {
    const writes = this.writesCounted ? await this.o.registry.foreignWrites() : undefined;
    if (writes !== undefined) return writes;
    this.writesCounted = false;
    return this.o.registry.countApps();
  }

  private due(): boolean {
    if (this.lastEnd === 0) return true;
    const since = Date.now() - this.lastEnd;
    if (this.moved) return since >= AFTER_WRITES_SPACING * this.lastMs;
    // Without the write counter, updates are seen by the backstop only: as often as its spacing allows.
    const floor = this.writesCounted ? BACKSTOP_MS : this.o.pollMs;
    return since >= Math.max(floor, BACKSTOP_SPACING * this.lastMs);
  }

  private tell(report: AuditReport): void {
    const { log } = this.o;
    const line = `registry audit: ${report.apps} apps, ${report.instances} instance entries read in ${Math.round(this.lastMs)} ms`;
    if (report.first) log.info(`${line}; the first of this farm: every node reads everything again`);
    else if (report.changed > 0)
      log.info(`${line}; ${report.changed} changed since the last audit, read again by every node`);
    else log.debug(line);
    if (report.first || report.changed > 0) this.o.found();
  }
}
