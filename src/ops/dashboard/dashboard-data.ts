import type { RenewalSource } from '../../acme/ari.js';
import { type CertificateSource, certificateSource } from '../../acme/qualify.js';
import type { InstanceExit } from '../../activation/exit-reason.js';
import type { InstanceState } from '../../activation/instances.js';
import { cpuSecondsOf, memoryOf, type Unenforced } from '../../activation/limit-groups.js';
import type { ActivatorSnapshot } from '../../activation/snapshot.js';
import { type App, formatProblem, type Problem, type SslPolicy } from '../../registry/types.js';
import { policyNames } from '../../registry/validate-edge.js';
import { type SecondStats, UNKNOWN_HOST } from '../metrics/traffic.js';
import type { FarmPicture } from './farm-view.js';

// The JSON of the dashboard's API (GET /api/overview, /api/events), built from what arr holds
// in memory. Plain data in, plain data out: admin-server.ts serves it, the README documents it.

export interface HostView {
  host: string;
  ssl: SslPolicy;
  /**
   * Where its certificate comes from, and when the one served expires (ISO 8601; null when not
   * known: an ACME certificate not obtained yet, the default one served meanwhile, or own files
   * that cannot be used, with `problem` saying why); for `acme`, when it is to be renewed and
   * whether that time is the CA's (`ari`) or two thirds of its lifetime.
   */
  certificate: {
    source: CertificateSource;
    expires?: string | null;
    problem?: string;
    renews?: string | null;
    renewalSource?: RenewalSource | null;
  };
}

export interface InstanceView {
  /** The node that runs it (its --advertise address). */
  node: string;
  port: number;
  /** Known for this node's instances only. */
  pid: number | null;
  state: InstanceState;
  /** Seconds since it was started (this node) or registered (other nodes); null when unknown. */
  uptime: number | null;
  /** Whether this node runs it. */
  local: boolean;
  /** This node's: CPU seconds it has used so far, and its memory in bytes (its cgroup's, else its RSS); null when unknown. */
  cpu?: number | null;
  memory?: number | null;
}

export interface AppView {
  id: string;
  name: string;
  /** `instances`: the farm's cap for the app. */
  cap: number;
  hosts: HostView[];
  instances: InstanceView[];
  /** Its last starts on this node that failed in a row (0: none; counted while it has no process here). */
  failedStarts: number;
  /** This node will not start it before `retryIn` seconds: it kept failing. */
  backoff: { failures: number; retryIn: number } | null;
  /** Its last complete second on this node. */
  traffic: SecondStats;
  /** Its instances on this node that ended and were or are to be followed by another (crash, oom, health, recycle, start-timeout) in the last hour. */
  restarts: number;
  /** The last instance of it that ended on this node, and why; null: none since arr started. */
  lastExit: InstanceExit | null;
  /** Its limits this node cannot enforce, and why (empty: all are, or it has none). */
  unenforced: Unenforced[];
  /** The names of its edge policies (allow, basicAuth, compress...): never a hash, URL or value. */
  policies: string[];
}

export interface NodeView {
  node: string;
  /** Its last beat (ms since the epoch). */
  lastBeat: number;
  /** Alive: its record has not expired. */
  alive: boolean;
  /** This node. */
  self: boolean;
  /** What it runs: app id, name and port. */
  instances: { app: string; name: string; port: number }[];
}

export interface Summary {
  apps: number;
  /** Instances this node runs (any state). */
  instances: number;
  backingOff: number;
  requests: number;
  errors: number;
  websockets: number;
  /** Requests for a host no app owns (or without a usable Host), in the last second: 404s and 400s. */
  unknownHosts: number;
}

/** The registry as the dashboard shows it: reachable, and what it skipped or ignored. */
export interface RegistryView {
  kind: 'file' | 'mongo';
  reachable: boolean;
  /** How many problems (documents skipped, fields ignored, start checks that failed). */
  problemCount: number;
  /** The first of them, formatted as the log has them. */
  problems: string[];
}

export interface Overview {
  time: number;
  node: string;
  registry: RegistryView;
  summary: Summary;
  /** Apps that match the query, before offset and limit. */
  matched: number;
  offset: number;
  apps: AppView[];
  /** With --mongo: the farm's nodes; null otherwise. */
  nodes: NodeView[] | null;
  /** With --mongo, when the farm's records could not be read (the last ones are shown). */
  farmError?: string;
}

export interface OverviewQuery {
  /** Apps whose name, id or a host contains this (case-insensitive). */
  q?: string;
  offset?: number;
  limit?: number;
  /** `name` (default) or `busy`: most requests first, then the apps with instances. */
  sort?: 'name' | 'busy';
}

/** What the overview is built from. */
export interface OverviewSources {
  now: number;
  node: string;
  kind: 'file' | 'mongo';
  reachable: boolean;
  /** The registry's problems and those of the start checks. */
  problems: readonly Problem[];
  apps: Iterable<App>;
  activator: ActivatorSnapshot;
  traffic: (appId: string) => SecondStats | undefined;
  exits?: (appId: string, now: number) => { restarts: number; lastExit: InstanceExit | null };
  unenforced?: (app: App) => Unenforced[];
  /** Requests for unknown hosts in the last complete second. */
  unknownHosts: number;
  farm?: FarmPicture;
  acme?: AcmeView;
}

const QUIET: SecondStats = Object.freeze({ requests: 0, errors: 0, p50: 0, p99: 0, websockets: 0 });

/** When a certificate is to be renewed (ms since the epoch), and who said so. */
export interface CertificateRenewal {
  renewAt: number;
  source: RenewalSource;
}

/** What the dashboard knows of ACME: on or off, and the expiry and renewal of each certificate served. */
export interface AcmeView {
  on: boolean;
  /** When the ACME certificate served for a host expires (ms since the epoch). */
  expiries: ReadonlyMap<string, number>;
  renewals?: ReadonlyMap<string, CertificateRenewal>;
}

function hostsOf(app: App, acme: AcmeView | undefined): HostView[] {
  return app.hosts.map((h) => {
    const source = certificateSource(h, acme?.on ?? false);
    if (source !== 'acme') return { host: h.host, ssl: h.ssl, certificate: { source } };
    const notAfter = acme?.expiries.get(h.host);
    const renewal = acme?.renewals?.get(h.host);
    return {
      host: h.host,
      ssl: h.ssl,
      certificate: {
        source,
        expires: notAfter === undefined ? null : new Date(notAfter).toISOString(),
        renews: renewal ? new Date(renewal.renewAt).toISOString() : null,
        renewalSource: renewal?.source ?? null,
      },
    };
  });
}

function matches(app: App, q: string): boolean {
  if (app.name.toLowerCase().includes(q) || app.id.toLowerCase().includes(q)) return true;
  return app.hosts.some((h) => h.host.includes(q));
}

export function buildOverview(s: OverviewSources, query: OverviewQuery = {}): Overview {
  const seconds = (ms: number) => Math.max(0, Math.round((s.now - ms) / 1000));
  const local = new Map<string, InstanceView[]>();
  for (const i of s.activator.instances) {
    const list = local.get(i.appId) ?? [];
    list.push({
      node: s.node,
      port: i.port,
      pid: i.pid,
      state: i.state,
      uptime: seconds(i.startedAt),
      local: true,
    });
    local.set(i.appId, list);
  }
  const remote = new Map<string, InstanceView[]>();
  for (const r of s.farm?.instances ?? []) {
    if (r.host === s.node) continue; // this node's own: the activator knows them better
    const list = remote.get(r.appId) ?? [];
    list.push({
      node: r.host,
      port: r.port,
      pid: null,
      state: 'ready',
      uptime: r.since ? seconds(r.since) : null,
      local: false,
    });
    remote.set(r.appId, list);
  }
  const failing = new Map(s.activator.failing.map((f) => [f.appId, f]));

  const summary: Summary = {
    apps: 0,
    instances: s.activator.instances.length,
    backingOff: backingOff(s.activator, s.now),
    requests: 0,
    errors: 0,
    websockets: 0,
    unknownHosts: s.unknownHosts,
  };
  const q = query.q?.trim().toLowerCase() ?? '';
  // Every app is counted and sorted; only the page asked for is built (10,000 apps, 50 shown).
  const all: Entry[] = [];
  const names = new Map<string, string>();
  for (const app of s.apps) {
    summary.apps++;
    names.set(app.id, app.name);
    const traffic = s.traffic(app.id) ?? QUIET;
    summary.requests += traffic.requests;
    summary.errors += traffic.errors;
    summary.websockets += traffic.websockets;
    if (q && !matches(app, q)) continue;
    const running = (local.get(app.id)?.length ?? 0) + (remote.get(app.id)?.length ?? 0);
    all.push({ app, traffic, running, key: app.name.toLowerCase() });
  }
  all.sort(query.sort === 'busy' ? byBusy : byName);
  const offset = Math.max(0, query.offset ?? 0);
  const limit = query.limit ?? all.length;
  const page = all.slice(offset, offset + limit).map(({ app, traffic }): AppView => {
    const f = failing.get(app.id);
    const exits = s.exits?.(app.id, s.now) ?? { restarts: 0, lastExit: null };
    return {
      id: app.id,
      name: app.name,
      cap: app.instances,
      hosts: hostsOf(app, s.acme),
      instances: [...withUsage(local.get(app.id), s.activator), ...(remote.get(app.id) ?? [])],
      failedStarts: f?.failures ?? 0,
      backoff:
        f && f.until > s.now
          ? { failures: f.failures, retryIn: Math.max(1, Math.ceil((f.until - s.now) / 1000)) }
          : null,
      traffic,
      restarts: exits.restarts,
      lastExit: exits.lastExit,
      unenforced: s.unenforced?.(app) ?? [],
      policies: policyNames(app.edge),
    };
  });
  const overview: Overview = {
    time: s.now,
    node: s.node,
    registry: registryView(s.kind, s.reachable, s.problems),
    summary,
    matched: all.length,
    offset,
    apps: page,
    nodes: s.farm ? nodesOf(s, names) : null,
  };
  if (s.farm?.error !== undefined) overview.farmError = s.farm.error;
  return overview;
}

/** Problems listed in the overview at most (all are counted). */
const LISTED_PROBLEMS = 100;

function registryView(
  kind: 'file' | 'mongo',
  reachable: boolean,
  problems: readonly Problem[],
): RegistryView {
  return {
    kind,
    reachable,
    problemCount: problems.length,
    problems: problems.slice(0, LISTED_PROBLEMS).map(formatProblem),
  };
}

/** This node's instances of one app of the page, with their CPU and memory (read now). */
function withUsage(views: InstanceView[] | undefined, a: ActivatorSnapshot): InstanceView[] {
  if (!views) return [];
  for (const v of views) {
    if (v.pid === null || v.pid <= 0) continue;
    const group = a.instances.find((i) => i.pid === v.pid)?.memoryGroup;
    v.cpu = cpuSecondsOf(v.pid) ?? null;
    v.memory = memoryOf(v.pid, group) ?? null;
  }
  return views;
}

function backingOff(a: ActivatorSnapshot, now: number): number {
  let n = 0;
  for (const f of a.failing) if (f.until > now) n++;
  return n;
}

/** An app that matches the query, with what the orders need. */
interface Entry {
  app: App;
  traffic: SecondStats;
  /** Its instances, here and elsewhere. */
  running: number;
  /** Its name in lower case. */
  key: string;
}

function byName(a: Entry, b: Entry): number {
  if (a.key !== b.key) return a.key < b.key ? -1 : 1;
  return a.app.id < b.app.id ? -1 : a.app.id > b.app.id ? 1 : 0;
}

function byBusy(a: Entry, b: Entry): number {
  return (
    b.traffic.requests - a.traffic.requests ||
    b.traffic.websockets - a.traffic.websockets ||
    b.running - a.running ||
    byName(a, b)
  );
}

function nodesOf(s: OverviewSources, names: Map<string, string>): NodeView[] {
  const farm = s.farm!;
  const byNode = new Map<string, NodeView>();
  for (const n of farm.nodes) {
    byNode.set(n.node, {
      node: n.node,
      lastBeat: n.beat,
      alive: n.expires >= s.now,
      self: n.node === s.node,
      instances: [],
    });
  }
  for (const r of farm.instances) {
    let view = byNode.get(r.host);
    if (!view) {
      // Entries of a node without a liveness record: one that died before its first beat.
      view = { node: r.host, lastBeat: 0, alive: false, self: r.host === s.node, instances: [] };
      byNode.set(r.host, view);
    }
    view.instances.push({ app: r.appId, name: names.get(r.appId) ?? r.appId, port: r.port });
  }
  return [...byNode.values()].sort((a, b) => (a.node < b.node ? -1 : a.node > b.node ? 1 : 0));
}

/** What /api/events sends about once a second. */
export interface Tick {
  time: number;
  /** Changes whenever an instance of this node starts, becomes ready, drains, stops or exits. */
  version: number;
  registry: { reachable: boolean; problemCount: number };
  summary: Summary;
  /** The apps with traffic or open WebSockets in the last second: [requests, errors, p50, p99, websockets]. */
  traffic: Record<string, [number, number, number, number, number]>;
}

export function buildTick(
  now: number,
  version: number,
  registry: { reachable: boolean; problemCount: number },
  apps: number,
  activator: ActivatorSnapshot,
  active: Map<string, SecondStats>,
): Tick {
  const summary: Summary = {
    apps,
    instances: activator.instances.length,
    backingOff: backingOff(activator, now),
    requests: 0,
    errors: 0,
    websockets: 0,
    unknownHosts: active.get(UNKNOWN_HOST)?.requests ?? 0,
  };
  const traffic: Tick['traffic'] = {};
  for (const [id, t] of active) {
    if (id === UNKNOWN_HOST) continue;
    summary.requests += t.requests;
    summary.errors += t.errors;
    summary.websockets += t.websockets;
    traffic[id] = [t.requests, t.errors, t.p50, t.p99, t.websockets];
  }
  return { time: now, version, registry, summary, traffic };
}
