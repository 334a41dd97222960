import { resolve } from 'node:path';
import { createSecureContext } from 'node:tls';
import type { Options } from 'yargs';
import { IdentityError, resolveIdentity } from '../activation/identity.js';
import { readAppsFile } from '../registry/apps-file.js';
import { FileRegistry } from '../registry/file-registry.js';
import { buildRouteTable } from '../registry/load.js';
import { MongoRegistry, redactUrl } from '../registry/mongo-registry.js';
import type { Registry } from '../registry/registry.js';
import { type App, formatProblem, type Machine, type Problem } from '../registry/types.js';
import { readFailure, readRegularFile } from '../util/read-limited.js';

/** Options of the admin commands only (checked for unknown flags together with arr's own). */
export const APPS_OPTIONS = {
  json: { type: 'boolean', describe: 'with `arr apps`: print JSON instead of a table' },
} as const satisfies Record<string, Options>;

type Print = (line: string) => void;

/** How an admin command ends: its exit status. Messages have been printed. */
export type ExitCode = 0 | 1;

/** One host of an app, as `arr apps --json` shows it. */
export interface HostView {
  host: string;
  ssl: string;
  /** Whether the host has its own certificate (served by SNI); else the default one. */
  ownCertificate: boolean;
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
  /** Where its instances run; null when the registry cannot tell (the file registry). */
  machines: Machine[] | null;
}

/** What `arr apps --json` prints. */
export interface AppsView {
  registry: { kind: 'file' | 'mongo'; source: string };
  apps: AppView[];
  /** Why `machines` is null, when it is. */
  note?: string;
  problems: Problem[];
}

const FILE_NOTE =
  'file registry: instances live only in the memory of the arr that serves this file, so where they run is not known here';

/**
 * `arr apps`: every app of the registry with its hosts, cap and instances. Exits 1 only when
 * the registry cannot be read at all; documents it skips are listed after the apps.
 */
export async function listApps(
  opts: { apps: string; mongo?: string; json?: boolean },
  out: Print,
  err: Print,
): Promise<ExitCode> {
  const registry: Registry = opts.mongo
    ? new MongoRegistry(opts.mongo, { serverSelectionTimeoutMS: 5000 })
    : new FileRegistry(resolve(opts.apps));
  const source = opts.mongo ? redactUrl(opts.mongo) : resolve(opts.apps);
  let view: AppsView;
  try {
    const report = await registry.load();
    const machines = registry.kind === 'mongo' ? await registry.allMachines() : undefined;
    view = {
      registry: { kind: registry.kind, source },
      apps: [...registry.apps()].sort(byName).map((app) => appView(registry, app, machines)),
      problems: report.problems,
    };
    if (!machines) view.note = FILE_NOTE;
  } catch (e) {
    err(`arr: apps: cannot read the registry at ${source}: ${describeError(e)}`);
    return 1;
  } finally {
    await registry.close().catch(() => {});
  }
  if (opts.json) out(JSON.stringify(view, null, 2));
  else for (const line of formatApps(view)) out(line);
  return 0;
}

function byName(a: App, b: App): number {
  return a.name < b.name ? -1 : a.name > b.name ? 1 : a.id < b.id ? -1 : a.id > b.id ? 1 : 0;
}

function appView(registry: Registry, app: App, machines: Map<string, Machine[]> | undefined): AppView {
  return {
    id: app.id,
    name: app.name,
    instances: app.instances,
    hosts: app.hosts.map((h) => ({
      host: h.host,
      ssl: h.ssl,
      ownCertificate: h.cert !== undefined && h.key !== undefined,
      served: registry.route(h.host)?.app.id === app.id,
      ...(h.cert !== undefined ? { cert: h.cert, key: h.key } : {}),
    })),
    machines: machines ? (machines.get(app.id) ?? []) : null,
  };
}

/** The plain, aligned table of `arr apps`: one row per host (and per instance), app columns once. */
export function formatApps(view: AppsView): string[] {
  const withMachines = view.registry.kind === 'mongo';
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
        h ? (h.ownCertificate ? 'own' : 'default') : '',
        ...(withMachines ? [m ? `${m.host}:${m.port}` : i === 0 ? '-' : ''] : []),
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
  if (view.problems.length > 0) {
    lines.push('', `${plural(view.problems.length, 'problem')} (these documents or hosts are not served):`);
    for (const p of view.problems) lines.push(`  ${formatProblem(p)}`);
  }
  return lines;
}

/**
 * `arr validate FILE`: everything arr would report on loading the file (documents that do not
 * parse or validate, duplicate ids and host names), plus certificate files that cannot be read
 * or do not match their key, and users and groups this machine does not have; runs nothing.
 * Exits 1 when there is any problem.
 */
export async function validateFile(file: string, out: Print, err: Print): Promise<ExitCode> {
  const result = await checkAppsFile(file).catch((e: unknown) => {
    err(`arr: validate: cannot read "${file}" (${describeError(e)})`);
    return undefined;
  });
  if (!result) return 1;
  for (const p of result.problems) out(formatProblem(p));
  out(`${plural(result.valid, 'app')} valid, ${plural(result.problems.length, 'problem')}`);
  return result.problems.length > 0 ? 1 : 0;
}

export interface FileCheck {
  /** Apps that would be served exactly as written: no problem on their document's line. */
  valid: number;
  problems: Problem[];
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
  for (const app of table.apps.values()) {
    const line = linesOf.get(app.id)?.[0];
    all.push(...(await checkCertificates(app, line)), ...(await checkIdentity(app, line)));
  }
  all.sort((a, b) => (a.line ?? 0) - (b.line ?? 0));
  // Valid: served exactly as written, i.e. no problem on the line of the document served.
  const troubled = new Set(all.map((p) => p.line));
  const valid = [...table.apps.keys()].filter((id) => !troubled.has(linesOf.get(id)?.[0])).length;
  return { valid, problems: all };
}

/** The certificate and key files of an app's hosts: readable, and a key that fits its certificate. */
async function checkCertificates(app: App, line: number | undefined): Promise<Problem[]> {
  const problems: Problem[] = [];
  for (const [i, h] of app.hosts.entries()) {
    if (h.cert === undefined || h.key === undefined) continue;
    const problem = (field: string, message: string) =>
      problems.push({ id: app.id, line, field: `hosts[${i}].${field}`, message });
    const [cert, key] = await Promise.all([readPemFile(h.cert), readPemFile(h.key)]);
    if (typeof cert === 'string') problem('cert', cert);
    if (typeof key === 'string') problem('key', key);
    if (typeof cert === 'string' || typeof key === 'string') continue;
    try {
      createSecureContext({ cert, key });
    } catch (e) {
      const why = describeError(e);
      problem(
        'cert',
        /key values mismatch/i.test(why)
          ? `"${h.cert}" does not match its key "${h.key}"`
          : `"${h.cert}" and "${h.key}" are not a usable certificate and key (${why})`,
      );
    }
  }
  return problems;
}

/** The app's `user` and `group` name a user and group of this machine (as a start would find them). */
async function checkIdentity(app: App, line: number | undefined): Promise<Problem[]> {
  if (app.user === undefined) return [];
  try {
    await resolveIdentity(app.user, app.group);
    return [];
  } catch (e) {
    if (!(e instanceof IdentityError)) throw e;
    return [{ id: app.id, line, field: e.field, message: e.message }];
  }
}

/** The file's content, or why it cannot be read. Relative paths are arr's working directory's. */
async function readPemFile(path: string): Promise<Buffer | string> {
  try {
    return await readRegularFile(resolve(path));
  } catch (e) {
    return `cannot read "${path}" (${readFailure(e)})`;
  }
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
