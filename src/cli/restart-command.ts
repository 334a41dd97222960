import type { CommandModule } from 'yargs';
import { readStatuses } from '../activation/state-file.js';
import type { SlotNotes } from '../registry/revisions.js';
import { ALL_OPTIONS, APPS_OPTIONS, type AppsArgs, type ArrArgs } from './arr-options.js';
import { commandContext } from './command-context.js';
import { describeError, type ExitCode, openRegistry, type Print, revisionsOf } from './registry-access.js';

export const restartCommand: CommandModule<ArrArgs, AppsArgs & { app: string }> = {
  command: 'restart <app>',
  describe:
    'replace the instances of an app (its name or _id) on every node, without a dropped request (--apps or --mongo)',
  builder: (y) =>
    y
      .positional('app', { type: 'string', demandOption: true, describe: "the app's name or _id" })
      .options(APPS_OPTIONS),
  handler: async (argv) => {
    const { mongo, stateDir, print, printErr } = await commandContext(argv, ALL_OPTIONS);
    const opts = { apps: argv.apps, mongo, wait: !!argv.wait, stateDir };
    process.exit(await restartApp(String(argv.app), opts, print, printErr));
  },
};

/** How long `arr restart --wait` waits for every instance of the app to be replaced (or fail). */
const RESTART_WAIT_MS = 120_000;

/**
 * `arr restart NAME|ID`: asks every node that serves the app to replace its instances, by
 * adding 1 to the app's `revision`: in MongoDB with `$inc`; in an apps file by an edit of that
 * one value (every other byte kept), written to a temporary file renamed over the original.
 * Exits 0 once asked; with `wait`, once every instance runs the new revision (or its deploy
 * failed, then 1), as the slots (MongoDB) or the state files of the arr serving the file say.
 */
export async function restartApp(
  which: string,
  opts: { apps: string; mongo?: string; wait?: boolean; stateDir: string },
  out: Print,
  err: Print,
): Promise<ExitCode> {
  const { registry, source } = await openRegistry(opts);
  try {
    try {
      await registry.load();
    } catch (e) {
      err(`arr: restart: cannot read the registry at ${source}: ${describeError(e)}`);
      return 1;
    }
    const matches = [...registry.apps()].filter((a) => a.id === which || a.name === which);
    if (matches.length !== 1) {
      err(
        matches.length === 0
          ? `arr: restart: no app named or with _id "${which}" in ${source}`
          : `arr: restart: "${which}" names ${matches.length} apps (${matches.map((a) => a.id).join(', ')}): give its _id`,
      );
      return 1;
    }
    const app = matches[0]!;
    const revisions = await revisionsOf(registry);
    const revision = await revisions.bump(app);
    if (typeof revision === 'string') {
      err(`arr: restart: ${revision}`);
      return 1;
    }
    out(`${app.name}: revision ${revision} asked for`);
    if (!opts.wait) return 0;
    const deadline = Date.now() + RESTART_WAIT_MS;
    for (;;) {
      const state =
        revisions.where === 'slots'
          ? slotsState(await revisions.slotNotes(app.id), revision)
          : fileState(opts.stateDir, revisions.appsFile, app.id, revision);
      if (state.pending === 0) {
        for (const line of state.lines) out(`${app.name}: ${line}`);
        return state.failed > 0 ? 1 : 0;
      }
      if (Date.now() > deadline) {
        err(
          `arr: restart: ${state.pending} instance(s) of ${app.name} not replaced after ${RESTART_WAIT_MS / 1000} s`,
        );
        return 1;
      }
      await new Promise((r) => setTimeout(r, 100));
    }
  } catch (e) {
    err(`arr: restart: ${describeError(e)}`);
    return 1;
  } finally {
    await registry.close().catch(() => {});
  }
}

interface WaitState {
  pending: number;
  failed: number;
  lines: string[];
}

function slotsState(slots: SlotNotes, revision: number): WaitState {
  const state: WaitState = { pending: 0, failed: 0, lines: [] };
  if (slots.length === 0) state.lines.push('not running anywhere: the next start runs the new revision');
  for (const s of slots) {
    const where = `${s.host}:${s.port}`;
    if ((s.revision ?? 0) >= revision) state.lines.push(`replaced: ${where} runs revision ${revision}`);
    else if (s.deployFailed && s.deployFailed.revision >= revision) {
      state.failed++;
      state.lines.push(`FAILED at ${where} (the previous version serves): ${s.deployFailed.message}`);
    } else state.pending++;
  }
  return state;
}

function fileState(stateDir: string, file: string, appId: string, revision: number): WaitState {
  const state: WaitState = { pending: 0, failed: 0, lines: [] };
  const serving = readStatuses(stateDir).filter((s) => s.apps === file);
  for (const s of serving) {
    const mine = s.instances.filter((i) => i.app === appId);
    const deploy = s.deploys[appId];
    if (mine.length === 0)
      state.lines.push(`not running in arr ${s.pid}: its next start runs the new revision`);
    else if (deploy && deploy.revision >= revision && deploy.result === 'failed') {
      state.failed++;
      state.lines.push(`FAILED in arr ${s.pid} (the previous version serves): ${deploy.detail ?? ''}`);
    } else if (mine.every((i) => i.revision >= revision) || (deploy && deploy.revision >= revision))
      state.lines.push(`replaced in arr ${s.pid}: revision ${revision} serves`);
    else state.pending++;
  }
  if (serving.length === 0)
    state.lines.push(`no arr with state in ${stateDir} serves ${file}: the next start runs the new revision`);
  return state;
}
