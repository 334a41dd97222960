import { readFile, stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { qualifies } from '../acme/qualify.js';
import { Confinement } from '../activation/confine.js';
import { Preflight } from '../activation/preflight.js';
import { readStatuses } from '../activation/state-file.js';
import { envExposure, parseAppsText, readAppsFile } from '../registry/apps-file.js';
import { setRevision } from '../registry/apps-file-edit.js';
import { FileRegistry } from '../registry/file-registry.js';
import { buildRouteTable } from '../registry/load.js';
import { MongoRegistry, redactUrl } from '../registry/mongo-registry.js';
import type { Registry } from '../registry/registry.js';
import { type App, formatProblem, type Machine, type Problem } from '../registry/types.js';
import { policyNames } from '../registry/validate-edge.js';
import { replaceFile } from '../util/replace-file.js';

type Print = (line: string) => void;

/** How an admin command ends: its exit status. Messages have been printed. */
export type ExitCode = 0 | 1;

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
  machines: (Machine & { pid?: number })[] | null;
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
 * The registry a command reads: the MongoDB one with --mongo (a short server selection, so
 * that an unreachable one is told at once), else the apps file.
 */
export function openRegistry(opts: { apps: string; mongo?: string }): MongoRegistry | FileRegistry {
  return opts.mongo
    ? new MongoRegistry(opts.mongo, { serverSelectionTimeoutMS: 5000 })
    : new FileRegistry(resolve(opts.apps));
}

/**
 * `arr apps`: every app of the registry with its hosts, cap and instances. Exits 1 only when
 * the registry cannot be read at all; documents it skips are listed after the apps.
 */
export async function listApps(
  opts: { apps: string; mongo?: string; json?: boolean; stateDir: string; acmeOn?: boolean },
  out: Print,
  err: Print,
): Promise<ExitCode> {
  const registry = openRegistry(opts);
  const source = opts.mongo ? redactUrl(opts.mongo) : resolve(opts.apps);
  let view: AppsView;
  try {
    const report = await registry.load();
    const machines =
      registry.kind === 'mongo' ? await registry.allMachines() : servedInstances(opts.stateDir, source);
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
): Map<string, (Machine & { pid: number })[]> | undefined {
  const serving = readStatuses(stateDir).filter((s) => s.apps === file);
  if (serving.length === 0) return undefined;
  const byApp = new Map<string, (Machine & { pid: number })[]>();
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
  machines: Map<string, (Machine & { pid?: number })[]> | undefined,
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
  if (registry instanceof MongoRegistry) {
    for (const app of view.apps)
      for (const slot of await registry.slotNotes(app.id))
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

/**
 * `arr validate FILE`: everything arr would report on loading the file (documents that do not
 * parse or validate, duplicate ids and host names, unknown fields), plus what a start would run
 * into on this machine (src/activation/preflight.ts: certificates, users and groups, programs,
 * working directories); runs nothing. Exits 1 when there is any problem.
 */
export async function validateFile(file: string, out: Print, err: Print): Promise<ExitCode> {
  const result = await checkAppsFile(file).catch((e: unknown) => {
    err(`arr: validate: cannot read "${file}" (${describeError(e)})`);
    return undefined;
  });
  if (!result) return 1;
  for (const p of result.problems) out(formatProblem(p));
  if (result.exposed) out(`warning: ${result.exposed}`);
  for (const line of result.unenforced) out(`warning: ${line}`);
  if (result.acme.length > 0)
    out(`ACME-managed with --acme-email (${result.acme.length}): ${result.acme.join(', ')}`);
  out(`${plural(result.valid, 'app')} valid, ${plural(result.problems.length, 'problem')}`);
  return result.problems.length > 0 ? 1 : 0;
}

export interface FileCheck {
  /** Apps that would be served exactly as written: no problem on their document's line. */
  valid: number;
  problems: Problem[];
  /** Hosts whose certificate comes from the ACME CA when arr runs with --acme-email. */
  acme: string[];
  /** Other users can read the file, and with it the apps' `env` values. */
  exposed?: string;
  /** Limits that arr, run here as this user, could not enforce: one line per app and limit. */
  unenforced: string[];
}

/** Checks an apps file as `arr validate` does, without printing. */
export async function checkAppsFile(file: string): Promise<FileCheck> {
  const parsed = await readAppsFile(file);
  const { table, problems, lines: linesOf } = buildRouteTable(parsed.docs);
  // Duplicate ids and host names are found across documents, without a line: give them the
  // line of the valid document concerned (for a repeated _id, each later copy in turn).
  const repeats = new Map<string, number>();
  for (const p of problems) {
    if (p.line !== undefined || p.id === undefined) continue;
    const lines = linesOf.get(p.id) ?? [];
    if (p.field === '_id') {
      const n = (repeats.get(p.id) ?? 0) + 1;
      repeats.set(p.id, n);
      p.line = lines[n];
    } else {
      p.line = lines[0];
    }
  }
  const all: Problem[] = [...parsed.problems, ...problems];
  const preflight = new Preflight();
  for (const app of table.apps.values()) all.push(...(await preflight.check(app, linesOf.get(app.id)?.[0])));
  all.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  // Valid: served exactly as written, i.e. no problem on the line of the document served.
  const troubled = new Set(all.map((p) => p.line));
  const valid = [...table.apps.keys()].filter((id) => !troubled.has(linesOf.get(id)?.[0])).length;
  const acme = [...table.apps.values()]
    .flatMap((a) => a.hosts)
    .filter((h) => qualifies(h))
    .map((h) => h.host)
    .sort();
  const exposed = await envExposure(file, table.apps.values());
  const here = Confinement.probe();
  const unenforced = [...table.apps.values()].flatMap((app) =>
    here
      .unenforced(app.limits)
      .map(({ limit, why }) => `app ${app.id}: limits.${limit} is not enforced here: ${why}`),
  );
  return { valid, problems: all, acme, unenforced, ...(exposed ? { exposed } : {}) };
}

function describeError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  const message = e instanceof Error ? e.message : String(e);
  // OpenSSL's messages start with an error code: keep the readable part.
  return message.replace(/^error:[0-9A-F]+:[^:]*:+/, '');
}

function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}

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
  const registry = openRegistry(opts);
  const source = opts.mongo ? redactUrl(opts.mongo) : resolve(opts.apps);
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
    let revision: number;
    if (registry instanceof MongoRegistry) revision = await registry.bumpRevision(app.id);
    else {
      const bumped = await bumpRevisionInFile(registry.path, app);
      if (typeof bumped === 'string') {
        err(`arr: restart: ${bumped}`);
        return 1;
      }
      revision = bumped;
    }
    out(`${app.name}: revision ${revision} asked for`);
    if (!opts.wait) return 0;
    const deadline = Date.now() + RESTART_WAIT_MS;
    for (;;) {
      const state =
        registry instanceof MongoRegistry
          ? await slotsState(registry, app.id, revision)
          : fileState(opts.stateDir, registry.path, app.id, revision);
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

/** The apps file with the app's revision one more, written atomically; the new revision, or why not. */
async function bumpRevisionInFile(file: string, app: App): Promise<number | string> {
  const text = await readFile(file, 'utf8');
  const { table, lines } = buildRouteTable(parseAppsText(text).docs);
  const line = lines.get(app.id)?.[0];
  if (!table.apps.has(app.id) || line === undefined) return `${file} changed meanwhile; try again`;
  const revision = (table.apps.get(app.id)?.revision ?? 0) + 1;
  const edited = setRevision(text, line, revision);
  if (edited === undefined) return `cannot find the document of ${app.name} in ${file}`;
  const mode = (await stat(file)).mode & 0o7777;
  await replaceFile(file, edited, { mode, durable: true });
  return revision;
}

interface WaitState {
  pending: number;
  failed: number;
  lines: string[];
}

async function slotsState(registry: MongoRegistry, appId: string, revision: number): Promise<WaitState> {
  const state: WaitState = { pending: 0, failed: 0, lines: [] };
  const slots = await registry.slotNotes(appId);
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
