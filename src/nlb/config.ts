import { readFileSync } from 'node:fs';
import { isIP } from 'node:net';
import { isDnsName, normaliseHostName } from '../util/host-name.js';

/** One backend of a route: where connections are handed to. */
export interface BackendConfig {
  host: string;
  port: number;
}

/** One listening port and the backends its connections are spread over. */
export interface RouteConfig {
  /** The TCP port nlb listens on. */
  port: number;
  /** The listen address; undefined means `--bind`, or all interfaces. */
  host?: string;
  backends: BackendConfig[];
  /** Send a PROXY protocol v1 header to the backend before the client's bytes. */
  proxyProtocol: boolean;
}

/**
 * An nlb.json that cannot be used. `problems` has one line per problem, each naming the route
 * (counted from 1, with its port) and the field (`backends[i]` indexes from 0, as in JSON).
 */
export class ConfigError extends Error {
  constructor(
    readonly file: string,
    readonly problems: string[],
  ) {
    super(problems.map((p) => `${file}: ${p}`).join('\n'));
  }
}

const ROUTE_FIELDS = new Set(['port', 'host', 'backends', 'proxyProtocol']);
const BACKEND_FIELDS = new Set(['host', 'port']);

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

function show(v: unknown): string {
  if (v === undefined) return 'nothing';
  const s = JSON.stringify(v);
  return s.length > 60 ? `${s.slice(0, 57)}...` : s;
}

function checkPort(v: unknown): string | undefined {
  if (v === undefined) return 'is missing (a port number from 1 to 65535 is expected)';
  if (typeof v !== 'number' || !Number.isInteger(v) || v < 1 || v > 65535)
    return `must be a port number from 1 to 65535 (got ${show(v)})`;
  return undefined;
}

/** A host name or an IP address; an IPv6 address may be written in brackets. */
function normaliseHost(v: unknown): { host: string } | { problem: string } {
  if (v === undefined) return { problem: 'is missing (a host name or an IP address is expected)' };
  if (typeof v !== 'string') return { problem: `must be a host name or an IP address (got ${show(v)})` };
  const host = v.startsWith('[') && v.endsWith(']') ? v.slice(1, -1) : v;
  if (isIP(host) !== 0 || isDnsName(normaliseHostName(host))) return { host };
  return { problem: `must be a host name or an IP address (got ${show(v)})` };
}

/** Two listen addresses that would collide on one port: equal, or one of them is "all". */
function sameListen(a: string | undefined, b: string | undefined): boolean {
  const all = (h: string | undefined) => h === undefined || h === '0.0.0.0' || h === '::';
  return all(a) || all(b) || a === b;
}

/**
 * Checks a parsed nlb.json: an array of routes
 * `{ port, host?, backends: [{ host, port }, ...], proxyProtocol? }`. Every problem is listed.
 */
export function validateConfig(doc: unknown, file = 'nlb.json'): RouteConfig[] {
  if (!Array.isArray(doc))
    throw new ConfigError(file, [
      `must be a JSON array of routes like [{"port": 80, "backends": [{"host": "127.0.0.1", "port": 8000}]}] (got ${
        doc === null ? 'null' : typeof doc
      })`,
    ]);
  if (doc.length === 0) throw new ConfigError(file, ['has no routes (the array is empty)']);

  const problems: string[] = [];
  const routes: RouteConfig[] = [];
  const listens: { port: number; host: string | undefined; route: number }[] = [];
  doc.forEach((raw: unknown, i) => {
    const portText = isRecord(raw) && typeof raw.port === 'number' ? ` (port ${raw.port})` : '';
    const where = `route ${i + 1}${portText}`;
    const fail = (field: string, message: string) => problems.push(`${where}: ${field} ${message}`);
    if (!isRecord(raw)) {
      problems.push(`${where}: must be an object with "port" and "backends" (got ${show(raw)})`);
      return;
    }
    for (const key of Object.keys(raw))
      if (!ROUTE_FIELDS.has(key))
        fail(`"${key}"`, 'is not a route field (expected port, host, backends, proxyProtocol)');

    const portProblem = checkPort(raw.port);
    if (portProblem) fail('port', portProblem);

    let host: string | undefined;
    if (raw.host !== undefined) {
      const h = normaliseHost(raw.host);
      if ('problem' in h) fail('host', h.problem);
      else host = h.host;
    }

    if (raw.proxyProtocol !== undefined && typeof raw.proxyProtocol !== 'boolean')
      fail('proxyProtocol', `must be true or false (got ${show(raw.proxyProtocol)})`);

    const backends: BackendConfig[] = [];
    if (raw.backends === undefined) fail('backends', 'is missing (a list of {"host", "port"} is expected)');
    else if (!Array.isArray(raw.backends))
      fail('backends', `must be a list of {"host", "port"} (got ${show(raw.backends)})`);
    else if (raw.backends.length === 0) fail('backends', 'is empty (at least one backend is needed)');
    else
      raw.backends.forEach((b: unknown, j) => {
        const field = `backends[${j}]`;
        if (!isRecord(b)) {
          fail(field, `must be an object {"host", "port"} (got ${show(b)})`);
          return;
        }
        for (const key of Object.keys(b))
          if (!BACKEND_FIELDS.has(key))
            fail(`${field}."${key}"`, 'is not a backend field (expected host, port)');
        const h = normaliseHost(b.host);
        if ('problem' in h) fail(`${field}.host`, h.problem);
        const p = checkPort(b.port);
        if (p) fail(`${field}.port`, p);
        if ('host' in h && !p) backends.push({ host: h.host, port: b.port as number });
      });

    if (!portProblem) {
      const port = raw.port as number;
      const twin = listens.find((l) => l.port === port && sameListen(l.host, host));
      if (twin) {
        const on = twin.host || host ? ` (on ${twin.host ?? 'all interfaces'})` : '';
        fail('port', `${port} is already the listen port of route ${twin.route}${on}`);
      }
      listens.push({ port, host, route: i + 1 });
    }
    routes.push({ port: raw.port as number, host, backends, proxyProtocol: raw.proxyProtocol === true });
  });
  if (problems.length > 0) throw new ConfigError(file, problems);
  return routes;
}

/** Reads and checks an nlb.json. Throws ConfigError with a message naming the file. */
export function loadConfig(path: string, name = path): RouteConfig[] {
  let text: string;
  try {
    text = readFileSync(path, 'utf8');
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code ?? 'unreadable';
    const why =
      code === 'ENOENT'
        ? 'no such file (give another one with --config FILE)'
        : code === 'EISDIR'
          ? 'is a directory'
          : code === 'EACCES'
            ? 'permission denied'
            : 'cannot be read';
    throw new ConfigError(name, [`${why} (${code})`]);
  }
  let doc: unknown;
  try {
    doc = JSON.parse(text);
  } catch (err) {
    const message = (err as Error).message;
    const at = /at position (\d+)/.exec(message);
    let where = '';
    if (at) {
      const before = text.slice(0, Number(at[1])).split('\n');
      where = ` (line ${before.length}, column ${before[before.length - 1]!.length + 1})`;
    }
    throw new ConfigError(name, [`is not valid JSON${where}: ${message}`]);
  }
  return validateConfig(doc, name);
}
