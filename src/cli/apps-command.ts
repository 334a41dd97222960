import type { CommandModule } from 'yargs';
import { qualifies } from '../acme/qualify.js';
import { readStatuses } from '../activation/state-file.js';
import type { Registry } from '../registry/registry.js';
import { type App, formatProblem, type InstanceAddress, type Problem } from '../registry/types.js';
import { policyNames } from '../registry/validate-edge.js';
import { ALL_OPTIONS, APPS_OPTIONS, type AppsArgs, type ArrArgs } from './arr-options.js';
import { commandContext } from './command-context.js';
import {
  describeError,
  type ExitCode,
  openRegistry,
  type Print,
  plural,
  revisionsOf,
} from './registry-access.js';

export const appsCommand: CommandModule<ArrArgs, AppsArgs> = {
  command: 'apps',
  describe: 'list the apps of the registry (--apps or --mongo): hosts, cap, where they run',
  builder: (y) => y.options(APPS_OPTIONS),
  handler: async (argv) => {
    const { mongo, stateDir, print, printErr } = await commandContext(argv, ALL_OPTIONS);
    const opts = { apps: argv.apps, mongo, json: !!argv.json, stateDir, acmeOn: !!argv['acme-email'] };
    process.exit(await listApps(opts, print, printErr));
  },
};

/** One host of an app, as `arr apps --json` shows it. */
export interface HostView {
  host: string;
  ssl: string;
  /** Whether the host has its own certificate (served by SNI); else the default one. */
  ownCertificate: boolean;
  /** Whether its certificate comes from the ACME CA when arr runs with --acme-email. */
  acme: boolean;
  /** False when another app keeps this host name (listed in the problems). */
  served: boolean;
  cert?: string;
  key?: string;
}

/** One app, as `arr apps --json` shows it. */
export interface AppView {
  id: string;
  name: string;
  /** The cap: at most this many instances across the farm. */
  instances: number;
  hosts: HostView[];
  /**
   * Where its instances run (for a file, those of the arr serving it on this machine, with their
   * pids); null when that cannot be told (no arr here serves the file).
   */
  machines: (InstanceAddress & { pid?: number })[] | null;
  /** The names of its `env` (never the values). */
  env?: string[];
  cwd?: string;
  ready?: string;
  stopTimeout?: number;
  revision?: number;
  /** The names of its edge policies (never their hashes, URLs or values). */
  policies?: string[];
  /** Deploys that failed: the instance keeps running the previous version. */
  deployFailures?: { where: string; revision: number; message: string }[];
}

/** What `arr apps --json` prints. */
export interface AppsView {
  registry: { kind: 'file' | 'mongo'; source: string };
  apps: AppView[];
  /** Why `machines` is null, when it is. */
  note?: string;
  problems: Problem[];
}

/** Why a file registry's instances are not shown. */
const fileNote = (stateDir: string) =>
  `no arr on this machine serves this file (none has a state file in ${stateDir}): no instance runs`;

/**
 * `arr apps`: every app of the registry with its hosts, cap and instances. Exits 1 only when
 * the registry cannot be read at all; documents it skips are listed after the apps.
 */
export async function listApps(
  opts: { apps: string; mongo?: string; json?: boolean; stateDir: string; acmeOn?: boolean },
  out: Print,
  err: Print,
): Promise<ExitCode> {
  const { registry, source } = await openRegistry(opts);
  let view: AppsView;
  try {
    const report = await registry.load();
    const machines =
      registry.kind === 'mongo' ? await registry.allAddresses() : servedInstances(opts.stateDir, source);
    view = {
      registry: { kind: registry.kind, source },
      apps: [...registry.apps()].sort(byName).map((app) => appView(registry, app, machines)),
      problems: report.problems,
    };
    await addDeployFailures(view, registry, opts.stateDir);
    if (!machines) view.note = fileNote(opts.stateDir);
  } catch (e) {
    err(`arr: apps: cannot read the registry at ${source}: ${describeError(e)}`);
    return 1;
  } finally {
    await registry.close().catch(() => {});
  }
  if (opts.json) out(JSON.stringify(view, null, 2));
  else for (const line of formatApps(view, opts.acmeOn)) out(line);
  return 0;
}

/**
 * The instances of the arr that serves `file` on this machine, by app, as its state file lists
 * them (on loopback, where arr reaches them); undefined when no live arr serves it.
 */
function servedInstances(
  stateDir: string,
  file: string,
): Map<string, (InstanceAddress & { pid: number })[]> | undefined {
  const serving = readStatuses(stateDir).filter((s) => s.apps === file);
  if (serving.length === 0) return undefined;
  const byApp = new Map<string, (InstanceAddress & { pid: number })[]>();
  for (const s of serving)
    for (const i of s.instances)
      byApp.set(i.app, [...(byApp.get(i.app) ?? []), { host: '127.0.0.1', port: i.port, pid: i.pid }]);
  return byApp;
}

function byName(a: App, b: App): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function appView(
  registry: Registry,
  app: App,
  machines: Map<string, (InstanceAddress & { pid?: number })[]> | undefined,
): AppView {
  return {
    id: app.id,
    name: app.name,
    instances: app.instances,
    hosts: app.hosts.map((h) => ({
      host: h.host,
      ssl: h.ssl,
      ownCertificate: h.cert !== undefined && h.key !== undefined,
      acme: qualifies(h),
      served: registry.route(h.host)?.app.id === app.id,
      ...(h.cert !== undefined ? { cert: h.cert, key: h.key } : {}),
    })),
    machines: machines ? (machines.get(app.id) ?? []) : null,
    ...(app.env ? { env: Object.keys(app.env) } : {}),
    ...(app.cwd !== undefined ? { cwd: app.cwd } : {}),
    ...(app.ready !== undefined ? { ready: app.ready } : {}),
    ...(app.stopTimeout !== undefined ? { stopTimeout: app.stopTimeout } : {}),
    ...(app.revision !== undefined ? { revision: app.revision } : {}),
    ...(app.edge !== undefined ? { policies: policyNames(app.edge) } : {}),
  };
}

/**
 * Failed deploys: in MongoDB, noted on the slot of the instance that kept serving; for a file,
 * in the state files of the arr serving it (on this machine).
 */
async function addDeployFailures(view: AppsView, registry: Registry, stateDir: string): Promise<void> {
  const byApp = new Map(view.apps.map((a) => [a.id, a]));
  const add = (id: string, f: { where: string; revision: number; message: string }) => {
    const app = byApp.get(id);
    if (!app) return;
    app.deployFailures ??= [];
    app.deployFailures.push(f);
  };
  const revisions = await revisionsOf(registry);
  if (revisions.where === 'slots') {
    for (const app of view.apps)
      for (const slot of await revisions.slotNotes(app.id))
        if (slot.deployFailed && slot.deployFailed.revision >= (app.revision ?? 0))
          add(app.id, { where: `${slot.host}:${slot.port}`, ...slot.deployFailed });
    return;
  }
  for (const status of readStatuses(stateDir)) {
    if (status.apps !== view.registry.source) continue;
    for (const [id, d] of Object.entries(status.deploys))
      if (d.result === 'failed' && d.revision >= (byApp.get(id)?.revision ?? 0))
        add(id, { where: `arr ${status.pid}`, revision: d.revision, message: d.detail ?? 'failed' });
  }
}

/** The plain, aligned table of `arr apps`: one row per host (and per instance), app columns once. */
export function formatApps(view: AppsView, acmeOn = false): string[] {
  const withMachines = view.note === undefined;
  const header = ['APP', 'ID', 'CAP', 'HOST', 'SSL', 'CERT', ...(withMachines ? ['RUNNING'] : [])];
  const rows: string[][] = [header];
  for (const app of view.apps) {
    const machines = app.machines ?? [];
    const height = Math.max(app.hosts.length, withMachines ? machines.length : 0, 1);
    for (let i = 0; i < height; i++) {
      const h = app.hosts[i];
      const m = machines[i];
      rows.push([
        i === 0 ? app.name : '',
        i === 0 ? app.id : '',
        i === 0 ? String(app.instances) : '',
        h ? (h.served ? h.host : `${h.host} (not served)`) : '',
        h?.ssl ?? '',
        h ? (h.ownCertificate ? 'own' : acmeOn && h.acme ? 'acme' : 'default') : '',
        ...(withMachines
          ? [m ? `${m.host}:${m.port}${m.pid === undefined ? '' : ` (pid ${m.pid})`}` : i === 0 ? '-' : '']
          : []),
      ]);
    }
  }
  const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  const lines = rows.map((r) =>
    r
      .map((cell, c) => cell.padEnd(widths[c]!))
      .join('  ')
      .trimEnd(),
  );
  const running = view.apps.reduce((n, a) => n + (a.machines?.length ?? 0), 0);
  const from = view.registry.kind === 'mongo' ? `MongoDB ${view.registry.source}` : view.registry.source;
  lines.push(
    '',
    `${plural(view.apps.length, 'app')} in ${from}${withMachines ? `, ${plural(running, 'instance')} running` : ''}`,
  );
  if (view.note) lines.push(view.note);
  if (acmeOn && view.apps.some((a) => a.hosts.some((h) => h.acme)))
    lines.push('CERT acme: the certificate comes from the ACME CA (--acme-email)');
  const deploy = view.apps.filter(
    (a) =>
      a.env ||
      a.cwd ||
      a.ready ||
      a.stopTimeout !== undefined ||
      a.revision !== undefined ||
      a.policies ||
      a.deployFailures,
  );
  if (deploy.length > 0) lines.push('');
  for (const a of deploy) {
    const parts = [
      a.env && a.env.length > 0 ? `env ${a.env.join(', ')}` : undefined,
      a.cwd !== undefined ? `cwd ${a.cwd}` : undefined,
      a.ready !== undefined ? `ready ${a.ready}` : undefined,
      a.stopTimeout !== undefined ? `stopTimeout ${a.stopTimeout} s` : undefined,
      a.revision !== undefined ? `revision ${a.revision}` : undefined,
      a.policies ? `policies ${a.policies.join(', ')}` : undefined,
    ].filter(Boolean);
    if (parts.length > 0) lines.push(`${a.name}: ${parts.join('; ')}`);
    for (const f of a.deployFailures ?? [])
      lines.push(
        `${a.name}: deploy of revision ${f.revision} FAILED at ${f.where} (the previous version serves): ${f.message}`,
      );
  }
  if (view.problems.length > 0) {
    lines.push('', `${plural(view.problems.length, 'problem')} (these documents or hosts are not served):`);
    for (const p of view.problems) lines.push(`  ${formatProblem(p)}`);
  }
  return lines;
}
