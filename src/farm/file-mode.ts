import { type FSWatcher, watch } from 'node:fs';
import { readFile, stat } from 'node:fs/promises';
import { basename, dirname } from 'node:path';
import { type ParsedAppsFile, parseAppsText } from '../registry/apps-file.js';
import type { FileRegistry } from '../registry/file-registry.js';
import { buildRouteTable } from '../registry/load.js';
import { formatProblem, type Problem } from '../registry/types.js';
import { every } from '../util/every.js';
import { oneAtATime } from '../util/one-at-a-time.js';
import { applyReload, type ReloadTargets, type ServingMode } from './mode.js';

export interface FileWatchOptions {
  /** Quiet time after the last change event before the file is read (editors write in bursts). */
  debounceMs?: number;
  /** How often the file's mtime, size and inode are compared, for changes the watcher missed. */
  pollMs?: number;
  /** Problems already reported by the load at start, so that they are not logged again. */
  reported?: Problem[];
}

/** The watch of the apps file: `check` reads it now (a reload); `stop` ends the watch. */
export interface AppsFileWatch {
  check(): Promise<void>;
  stop(): void;
}

/**
 * Applies edits of the apps file while arr runs: routes, SNI certificates and caps follow the
 * file, and the instance of an app that left it is stopped. Changes are seen by a watch on the
 * file's directory (debounced), and by a cheap stat every couple of seconds for editors and
 * tools that replace the file in ways a watch misses.
 *
 * A file caught half-written is not applied: a reading that has a syntax problem the last
 * applied one did not have, and that would lose apps served now, is set aside (logged) and the
 * last good apps keep serving; so is an empty file while apps are served (write `[]` to remove
 * every app). A document that parses but breaks a rule is skipped as at start, and the others
 * are served.
 */
export function watchAppsFile(
  targets: ReloadTargets & { registry: FileRegistry },
  options: FileWatchOptions = {},
): AppsFileWatch {
  const { registry, log } = targets;
  const file = registry.path;
  const name = basename(file);
  let stamp: string | undefined;
  let reported = problemKey(options.reported ?? []);
  let setAside: string | undefined;

  const reload = async (): Promise<void> => {
    let text: string;
    try {
      const st = await stat(file);
      stamp = `${st.mtimeMs}:${st.size}:${st.ino}`;
      text = await readFile(file, 'utf8');
    } catch (err) {
      stamp = 'unreadable';
      refuse(`cannot read it (${(err as NodeJS.ErrnoException).code ?? (err as Error).message})`);
      return;
    }
    const parsed = parseAppsText(text);
    const why = halfWritten(text, parsed);
    if (why) {
      refuse(why);
      return;
    }
    setAside = undefined;
    registry.notApplied = undefined;
    const report = await registry.load(parsed);
    const key = problemKey(report.problems);
    if (report.changed || key !== reported) {
      for (const p of report.problems) log.warn(`registry: ${formatProblem(p)}`);
      reported = key;
    }
    if (report.changed) applyReload(targets, report.apps, file);
  };

  /** Why this reading must not replace the apps served now, or undefined when it may. */
  const halfWritten = (text: string, parsed: ParsedAppsFile): string | undefined => {
    const served = [...registry.apps()];
    if (text.trim() === '' && served.length > 0) return 'it is empty';
    const fresh = newProblems(registry.syntaxProblems, parsed.problems);
    if (fresh.length === 0) return undefined;
    const { table } = buildRouteTable(parsed.docs);
    const lost = served.filter((a) => !table.apps.has(a.id));
    if (lost.length === 0) return undefined;
    return `${formatProblem(fresh[0]!)} (${lost.length} served app${lost.length === 1 ? '' : 's'} would be lost)`;
  };

  const refuse = (why: string) => {
    if (why !== setAside)
      log.error(`registry: ${file} not applied: ${why}; still serving the last good version`);
    setAside = why;
    registry.notApplied = why;
  };

  let running = false;
  const trigger = oneAtATime(async () => {
    if (stopped) return;
    running = true;
    await reload().catch((err: unknown) => log.error({ err }, `registry: reloading ${file} failed`));
    running = false;
  });

  let stopped = false;
  let debounce: NodeJS.Timeout | undefined;
  const changed = () => {
    clearTimeout(debounce);
    debounce = setTimeout(() => void trigger(), options.debounceMs ?? 200);
    debounce.unref();
  };

  let watcher: FSWatcher | undefined;
  try {
    watcher = watch(dirname(file), { persistent: false }, (_event, changedName) => {
      if (changedName === null || changedName.toString() === name) changed();
    });
    watcher.on('error', (err) => {
      log.warn(
        { err: err.message },
        `registry: watching ${dirname(file)} failed; checking every few seconds`,
      );
      watcher?.close();
    });
  } catch (err) {
    log.warn(
      { err: (err as Error).message },
      `registry: cannot watch ${dirname(file)}; checking every few seconds`,
    );
  }

  const stopPoll = every(options.pollMs ?? 2000, async () => {
    const st = await stat(file).catch(() => undefined);
    const now = st ? `${st.mtimeMs}:${st.size}:${st.ino}` : 'unreadable';
    if (now !== stamp && !running) void trigger();
  });

  return {
    check: trigger,
    stop: () => {
      stopped = true;
      clearTimeout(debounce);
      stopPoll();
      watcher?.close();
    },
  };
}

/** The problems of `now` that `before` did not have (compared by message: lines move in edits). */
function newProblems(before: Problem[], now: Problem[]): Problem[] {
  const counts = new Map<string, number>();
  for (const p of before) counts.set(p.message, (counts.get(p.message) ?? 0) + 1);
  return now.filter((p) => {
    const n = counts.get(p.message) ?? 0;
    if (n > 0) counts.set(p.message, n - 1);
    return n === 0;
  });
}

function problemKey(problems: Problem[]): string {
  return problems.map(formatProblem).join('\n');
}

/** Serving an apps file on one machine: its instances live in this process, and the file is watched. */
export class FileMode implements ServingMode {
  private watch: AppsFileWatch | undefined;

  constructor(
    private readonly targets: ReloadTargets & { registry: FileRegistry },
    /** Problems the load at start reported already. */
    private readonly reported: Problem[],
  ) {}

  async beforeServing(): Promise<void> {}

  startBackground(): void {
    this.watch = watchAppsFile(this.targets, { reported: this.reported });
  }

  stopBackground(): void {
    this.watch?.stop();
  }

  async reload(): Promise<void> {
    await this.watch?.check();
  }

  async afterStopping(): Promise<void> {}
}
