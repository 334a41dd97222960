/** The security policy of one host name. The seed's spellings "allow"/"require" are normalised. */
export type SslPolicy = 'allowed' | 'required' | 'none';

export interface ProcessSpec {
  executable: string;
  args: string[];
}

/** One host name of an application, as the router sees it. */
export interface HostRule {
  host: string;
  ssl: SslPolicy;
  /** Certificate and key files, both or neither; served by SNI for this host. */
  cert?: string;
  key?: string;
  /** `"acme": false`: never given a certificate from the ACME CA (keeps the default one). */
  acme?: boolean;
}

/** One validated application document. */
export interface App {
  /** A printable, unique form of `_id` (the ObjectId's hex, or the string or number itself). */
  id: string;
  /** `_id` exactly as stored, for queries against MongoDB. */
  rawId: unknown;
  /** What logs call the app: its optional `name` field, else its first host name. */
  name: string;
  process: ProcessSpec;
  hosts: HostRule[];
  /** K: at most this many instances across the whole farm. */
  instances: number;
  /** The user its instances run as (a name or a uid); only an arr running as root can. Else arr's. */
  user?: string;
  /** Their group (a name or a gid); default: the user's primary group. Only with `user`. */
  group?: string;
  /** Added to the instance's environment (after arr's own, less ARR_*; PORT is arr's). */
  env?: Record<string, string>;
  /** The instance's working directory (relative: against arr's). */
  cwd?: string;
  /** An HTTP path: an instance is ready once GET on it answers 2xx or 3xx. */
  ready?: string;
  /** `"h2c"`: instances speak HTTP/2 without TLS (gRPC); else HTTP/1.1 (the default, unset here). */
  protocol?: 'h2c';
  /** Seconds between SIGTERM and SIGKILL when an instance is stopped (default 10). */
  stopTimeout?: number;
  /** What the kernel holds each instance to (cgroup, RLIMIT_NOFILE); see resource-fields.ts. */
  limits?: Limits;
  /** Checked while an instance runs; one that fails is replaced. */
  health?: HealthCheck;
  /** When an instance is replaced by a fresh one. */
  recycle?: Recycle;
  /** Bumped by `arr restart`: a new value replaces the running instances. */
  revision?: number;
  /**
   * The app's edge policies (`access`, `headers`, `compress`, `maxBodySize`, `redirect`), when
   * it has any: undefined for an app without, so that the router pays one property check.
   */
  edge?: EdgeSpec;
}

/** A redirect app's answer: `to` + the request's path and query, with `status`. */
export interface RedirectSpec {
  to: string;
  status: 301 | 302 | 307 | 308;
}

/** Who may reach an app, as its document's `access` field says. */
export interface AccessSpec {
  /** CIDRs; when given, only client addresses in one of them pass. */
  allow?: string[];
  /** CIDRs refused (deny wins over allow). */
  deny?: string[];
  /** User name -> bcrypt hash ($2a$, $2b$, $2y$), as `htpasswd -B` makes them. */
  basicAuth?: { realm: string; users: Record<string, string> };
  /** An auth service asked before each request; `responseHeaders` are copied onto the request. */
  forwardAuth?: { url: string; responseHeaders: string[] };
  /** A token bucket per client address: `requests` per `perSeconds`, up to `burst` at once. */
  rateLimit?: { requests: number; perSeconds: number; burst: number };
}

/** Header names set (a string) or removed (null). */
export type HeaderEdits = Record<string, string | null>;

/** The edge policies of one app: each field absent when not used. */
export interface EdgeSpec {
  access?: AccessSpec;
  headers?: { request?: HeaderEdits; response?: HeaderEdits };
  compress?: boolean;
  maxBodySize?: number;
  redirect?: RedirectSpec;
}

/** An app's `limits`: each one optional. */
export interface Limits {
  /** Bytes of memory (and no swap beyond): the cgroup's memory.max. */
  memory?: number;
  /** Cores (0.5: half of one): the cgroup's cpu.max. */
  cpu?: number;
  /** Processes and threads: the cgroup's pids.max. */
  pids?: number;
  /** Open files: RLIMIT_NOFILE, soft and hard. */
  files?: number;
}

/** An app's `health`: GET `path` every `interval` s, `timeout` s each; `failures` in a row fail it. */
export interface HealthCheck {
  path: string;
  interval: number;
  timeout: number;
  failures: number;
}

/** An app's `recycle`: each one optional. */
export interface Recycle {
  /** After this many requests. */
  requests?: number;
  /** Once its memory passes this many bytes. */
  memory?: number;
  /** After this many seconds. */
  age?: number;
}

/** Where one running instance can be reached; the elements of an app's `machines`. */
export interface InstanceAddress {
  host: string;
  port: number;
}

/** What the router gets for a host name: the rule for that name and the app that owns it. */
export interface Route {
  rule: HostRule;
  app: App;
}

/** A document, or a line of a file, that could not be used, and why. */
export interface Problem {
  /** The document's `_id`, when it has one. */
  id?: string;
  /** 1-based line in the apps file where the document starts, when it came from a file. */
  line?: number;
  /** The offending field, as a path: `hosts[1].ssl`. */
  field?: string;
  message: string;
}

export function formatProblem(p: Problem): string {
  const where = [
    p.line !== undefined ? `line ${p.line}` : undefined,
    p.id !== undefined ? `app ${p.id}` : undefined,
  ]
    .filter(Boolean)
    .join(', ');
  return `${where || 'document'}: ${p.field ? `${p.field}: ` : ''}${p.message}`;
}

/**
 * What a running instance was started from: when it differs from the app's now (its process,
 * environment, directory, readiness path, user, group, revision or limits changed), the instance is
 * replaced (a rolling deploy).
 */
export function deployKey(app: App): string {
  return JSON.stringify([
    app.process,
    app.env ?? null,
    app.cwd ?? null,
    app.ready ?? null,
    app.user ?? null,
    app.group ?? null,
    app.revision ?? 0,
    app.limits ?? null,
  ]);
}

export function sameInstanceAddress(a: InstanceAddress, b: InstanceAddress): boolean {
  return a.host === b.host && a.port === b.port;
}
