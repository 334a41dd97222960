import type { App } from '../registry/types.js';

/** Lines kept per app: enough to see why an instance crashes. */
export const OUTPUT_LINES = 200;
/** Longer lines are cut (the log has them whole). */
const MAX_LINE_CHARS = 500;
/**
 * Apps whose output is kept at most: the ones that wrote last. With the bounds above, at most
 * 50 M characters in the worst case (every app writing long lines); a few MB in practice.
 */
const MAX_APPS = 500;

/** One line of an instance's output. */
export interface OutputLine {
  /** When arr read it (ms since the epoch). */
  time: number;
  pid: number;
  stream: 'stdout' | 'stderr';
  text: string;
}

/** A ring of lines: `next` is where the next line goes once it is full. */
interface Ring {
  lines: OutputLine[];
  next: number;
}

/**
 * The last lines of each app's instance output on this node (what arr logs with the app's
 * name), for the dashboard; only with --admin. Output is not on the request path; a line costs
 * one small object and a map re-insertion (which keeps the apps in the order they last wrote,
 * so the app silent longest is dropped first when there are too many).
 */
export class OutputLog {
  private readonly apps = new Map<string, Ring>();

  readonly add = (app: App, pid: number, stream: 'stdout' | 'stderr', line: string): void => {
    let ring = this.apps.get(app.id);
    if (ring) this.apps.delete(app.id);
    else {
      ring = { lines: [], next: 0 };
      if (this.apps.size >= MAX_APPS) {
        const oldest = this.apps.keys().next().value;
        if (oldest !== undefined) this.apps.delete(oldest);
      }
    }
    this.apps.set(app.id, ring);
    const entry: OutputLine = {
      time: Date.now(),
      pid,
      stream,
      text: line.length > MAX_LINE_CHARS ? `${line.slice(0, MAX_LINE_CHARS)}...` : line,
    };
    if (ring.lines.length < OUTPUT_LINES) ring.lines.push(entry);
    else {
      ring.lines[ring.next] = entry;
      ring.next = (ring.next + 1) % OUTPUT_LINES;
    }
  };

  /** The app's kept lines, oldest first. */
  lines(appId: string): OutputLine[] {
    const ring = this.apps.get(appId);
    if (!ring) return [];
    return [...ring.lines.slice(ring.next), ...ring.lines.slice(0, ring.next)];
  }
}
