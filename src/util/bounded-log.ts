import { type LevelWithSilent, type Logger, pino } from 'pino';
import { jsonOptions } from './log.js';

/** Bytes of output lines that may wait for stdout; past that, lines are dropped (and counted). */
const MAX_WAITING_BYTES = 4 * 1024 * 1024;
/** Room beyond it for the warning that says how many were dropped (a line is at most ~100 KB). */
const WARNING_ROOM_BYTES = 1024 * 1024;
/**
 * Each write is whole lines of at most stdout's atomic write size (PIPE_BUF; a longer line
 * alone): a line is written at once when no write is under way, else with those that came
 * meanwhile, in the next.
 */
const MAX_WRITE_BYTES = 4096;
/** The first drops of a spell are told this soon, later ones at most this often. */
const FIRST_WARNING_MS = 1_000;
const WARNING_EVERY_MS = 10_000;

/**
 * A log for lines that come faster than a reader may take them (instances' output): written to
 * stdout in the background, never blocking arr's event loop, with a bound on what waits. A line
 * that does not fit is dropped before it is even formatted (`admit` says so), counted, and the
 * drops are told in a warning (one a second after the first, then at most every 10 s).
 */
export interface BoundedLog {
  /** Where the lines go (children of it carry the instance's fields). */
  readonly log: Logger;
  /** Whether a line may be written now; false counts it as dropped. */
  admit(): boolean;
  /** Lines dropped since the start. */
  readonly dropped: number;
}

/**
 * The bounded log beside `log`, at its level. On a terminal it is `log` itself, which a terminal
 * reads as fast as it is written: nothing is dropped there.
 */
export function createBoundedLog(log: Logger, name = 'arr'): BoundedLog {
  if (process.stdout.isTTY) return { log, admit: () => true, dropped: 0 };
  return new StdoutBoundedLog(log.level as LevelWithSilent, name);
}

class StdoutBoundedLog implements BoundedLog {
  readonly log: Logger;
  dropped = 0;
  /** Bytes handed to the destination and not written yet. */
  private waiting = 0;
  private untold = 0;
  private toldAt = Number.NEGATIVE_INFINITY;
  private warning: NodeJS.Timeout | undefined;

  constructor(level: LevelWithSilent, name: string) {
    const destination = pino.destination({
      dest: 1,
      sync: false,
      minLength: 0,
      maxWrite: MAX_WRITE_BYTES,
      maxLength: MAX_WAITING_BYTES + WARNING_ROOM_BYTES,
    });
    destination.on('write', (n: number) => {
      this.waiting -= n;
    });
    // Should the room for warnings be exceeded after all, what the destination drops is counted too.
    destination.on('drop', (data: string) => {
      this.waiting -= Buffer.byteLength(data);
      this.drop();
    });
    const counted = {
      write: (line: string) => {
        this.waiting += Buffer.byteLength(line);
        destination.write(line);
      },
    };
    this.log = pino(jsonOptions(name, level), counted);
  }

  admit(): boolean {
    if (this.waiting < MAX_WAITING_BYTES) return true;
    this.drop();
    return false;
  }

  private drop(): void {
    this.dropped++;
    this.untold++;
    if (this.warning) return;
    const sinceTold = Date.now() - this.toldAt;
    this.warning = setTimeout(
      this.tell,
      sinceTold >= WARNING_EVERY_MS ? FIRST_WARNING_MS : WARNING_EVERY_MS - sinceTold,
    );
    this.warning.unref();
  }

  private readonly tell = (): void => {
    this.warning = undefined;
    this.toldAt = Date.now();
    this.log.warn(
      { dropped: this.untold },
      `instance output: ${this.untold} lines dropped (${this.dropped} since the start): stdout did not take them as fast as the instances wrote them`,
    );
    this.untold = 0;
  };
}
