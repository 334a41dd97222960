import { type Clock, sleep, systemClock } from '../activation/clock.js';
import type { FarmChores } from '../registry/registry.js';

/** While following an audit, how far the audits got is read after this long at first ... */
const FIRST_STEP_MS = 100;
/** ... then half as long again each time, up to an eighth of a poll: a long audit costs a lookup per eighth of a poll. */
const STEP_GROWTH = 1.5;
/** A follow ends after this many polls without an audit covering the writes (no holder, say): polls read it later. */
const FOLLOW_POLLS = 5;

export interface AuditFollowOptions {
  registry: Pick<FarmChores, 'foreignWrites' | 'auditedThrough'>;
  pollMs: number;
  /** Told when the audits cover the writes seen: the node reads the journal now. */
  covered: () => void;
  clock?: Clock;
}

/**
 * Every node's side of the edits made outside arr. Each poll it reads the server's write count
 * (one small command); when that moved, something other than arr wrote since the last poll, and
 * the holder of the chores is auditing it (AuditSchedule). The node then follows that audit,
 * reading how far the audits got (one lookup by `_id`, more and more spaced), and reads the
 * journal as soon as they cover the count it saw. An edit thus reaches every node within a poll
 * and the time to read it, provided the holder's audit ends within a poll of the edit; learning
 * of the audit at the next poll instead would add the audit's time and up to a poll.
 */
export class AuditFollow {
  /** The write count at the last poll; undefined before the first, or where the server does not tell. */
  private seen: number | undefined;
  private readonly clock: Clock;

  constructor(private readonly o: AuditFollowOptions) {
    this.clock = o.clock ?? systemClock;
  }

  /** Called every poll; resolves once the writes seen are covered, or the follow gave up. */
  readonly tick = async (): Promise<void> => {
    const { registry, pollMs, covered } = this.o;
    const now = await registry.foreignWrites();
    const before = this.seen;
    this.seen = now;
    if (now === undefined || before === undefined || now === before) return;
    const deadline = this.clock.now() + FOLLOW_POLLS * pollMs;
    let step = FIRST_STEP_MS;
    while ((await registry.auditedThrough()) < now) {
      if (this.clock.now() + step > deadline) return;
      await sleep(this.clock, step);
      step = Math.min(step * STEP_GROWTH, Math.max(FIRST_STEP_MS, pollMs / 8));
    }
    covered();
  };
}
