import { isValidHostName, isWildcardName, normaliseHostName } from '../util/host-name.js';
import { isRecord } from '../util/is-record.js';
import { ObjectId } from './bson.js';
import { APP_FIELDS, HOST_FIELDS, PROCESS_FIELDS, unknownFields } from './fields.js';
import { httpPath, validateResourceFields } from './resource-fields.js';
import type { App, HostRule, InstanceAddress, Problem, SslPolicy } from './types.js';
import { validateEdge } from './validate-edge.js';

const SSL_SPELLINGS: Record<string, SslPolicy> = {
  allowed: 'allowed',
  allow: 'allowed',
  required: 'required',
  require: 'required',
  none: 'none',
};

/**
 * The most bytes the executable and arguments of an app may take together. Linux refuses a
 * single argument of 128 KiB or more (MAX_ARG_STRLEN, with its NUL) and spawn() then throws:
 * this keeps every command line under that, and far under the 2 MB or so of ARG_MAX.
 */
export const MAX_COMMAND_BYTES = 128 * 1024;

// No program can receive one: spawn() refuses the whole command line.
const NUL_BYTE = 'contains a NUL byte, which no program can be given';

const ACCOUNT_NAME = /^[A-Za-z_][A-Za-z0-9._-]{0,31}\$?$/;
const NUMERIC_ID = /^\d{1,10}$/;

/**
 * A usable document (with `warnings`: fields it has that arr does not know, which are ignored:
 * a typo, most likely), or the problems that make it unusable.
 */
export type Validated = { ok: true; app: App; warnings: Problem[] } | { ok: false; problems: Problem[] };

/** The printable id of a document's `_id`, or undefined when it has none usable. */
export function idOf(raw: unknown): string | undefined {
  if (raw instanceof ObjectId) return raw.toHexString();
  if (typeof raw === 'string' && raw.length > 0) return raw;
  if (typeof raw === 'number' && Number.isFinite(raw)) return String(raw);
  return undefined;
}

/**
 * Checks one application document against the rules of the field table in docs/apps.md. Every
 * problem is reported with the field it concerns; a document with any problem is not used.
 */
export function validateApp(doc: unknown): Validated {
  if (!isRecord(doc)) return { ok: false, problems: [{ message: 'not a document (an object is expected)' }] };
  const id = idOf(doc._id);
  const problems: Problem[] = [];
  const fail = (field: string, message: string) => problems.push({ id, field, message });

  if (id === undefined) fail('_id', 'missing or not an ObjectId, string or number');

  const proc = doc.process;
  let executable = '';
  let args: string[] = [];
  // A redirect app answers every request itself: it has no process, and starts nothing.
  const redirects = doc.redirect !== undefined;
  if (redirects && proc !== undefined) {
    fail('redirect', 'an app redirects or runs a process, not both: remove "process" or "redirect"');
  } else if (redirects) {
    // checked by validateEdge
  } else if (!isRecord(proc)) {
    fail('process', 'missing or not an object with "executable" and "args"');
  } else {
    if (typeof proc.executable !== 'string' || proc.executable.trim() === '') {
      fail('process.executable', 'missing or not a non-empty string');
    } else if (proc.executable.includes('\0')) {
      fail('process.executable', NUL_BYTE);
    } else {
      executable = proc.executable;
    }
    if (proc.args === undefined) {
      args = [];
    } else if (!Array.isArray(proc.args) || !proc.args.every((a) => typeof a === 'string')) {
      fail('process.args', 'must be an array of strings');
    } else {
      args = proc.args as string[];
      args.forEach((a, i) => {
        if (a.includes('\0')) fail(`process.args[${i}]`, NUL_BYTE);
      });
    }
    const bytes = commandBytes(executable, args);
    if (bytes > MAX_COMMAND_BYTES) {
      fail(
        args.length > 0 ? 'process.args' : 'process.executable',
        `the executable and its arguments are ${bytes} bytes together; at most ${MAX_COMMAND_BYTES} (128 KiB)`,
      );
    }
  }

  const user = optionalAccount(doc.user, 'user', fail);
  const group = optionalAccount(doc.group, 'group', fail);
  if (group !== undefined && doc.user === undefined)
    fail('group', 'goes with "user": give the user the instances run as');

  const hosts: HostRule[] = [];
  if (!Array.isArray(doc.hosts) || doc.hosts.length === 0) {
    fail('hosts', 'missing or not a non-empty array');
  } else {
    doc.hosts.forEach((h: unknown, i: number) => {
      const rule = validateHost(h, `hosts[${i}]`, fail);
      if (rule) hosts.push(rule);
    });
    const seen = new Set<string>();
    for (const h of hosts) {
      if (seen.has(h.host)) fail('hosts', `host "${h.host}" is listed twice`);
      seen.add(h.host);
    }
  }

  let instances = 1;
  if (doc.instances !== undefined) {
    if (typeof doc.instances !== 'number' || !Number.isInteger(doc.instances) || doc.instances < 1) {
      fail('instances', `must be a whole number of at least 1 (got ${JSON.stringify(doc.instances)})`);
    } else {
      instances = doc.instances;
    }
  }

  const deploy = validateDeployFields(doc, fail);
  const resources = validateResourceFields(doc, fail);
  const edge = validateEdge(doc, fail);

  if (doc.protocol !== undefined && !PROTOCOLS.has(doc.protocol as string))
    fail('protocol', `must be "http/1.1" (the default) or "h2c" (got ${JSON.stringify(doc.protocol)})`);

  if (doc.machines !== undefined && parseMachines(doc.machines) === undefined) {
    fail('machines', 'must be an array of { host, port }');
  }

  if (problems.length > 0 || id === undefined) return { ok: false, problems };
  const warnings = unknownFieldsOf(doc, id);
  const name = typeof doc.name === 'string' && doc.name.trim() !== '' ? doc.name.trim() : hosts[0]!.host;
  const app: App = { id, rawId: doc._id, name, process: { executable, args }, hosts, instances };
  if (user !== undefined) app.user = user;
  if (group !== undefined) app.group = group;
  if (doc.protocol === 'h2c') app.protocol = 'h2c';
  Object.assign(app, deploy, resources);
  if (edge !== undefined) app.edge = edge;
  return { ok: true, app, warnings };
}

/** The fields of the document, its `process` and its hosts that arr does not know (ignored). */
function unknownFieldsOf(doc: Record<string, unknown>, id: string): Problem[] {
  const warnings: Problem[] = [];
  const check = (obj: unknown, known: readonly string[], path: string) => {
    if (!isRecord(obj)) return;
    for (const { field, meant } of unknownFields(obj, known))
      warnings.push({
        id,
        field: `${path}${field}`,
        message: `unknown field, ignored${meant === undefined ? '' : ` (did you mean "${meant}"?)`}`,
      });
  };
  check(doc, APP_FIELDS, '');
  check(doc.process, PROCESS_FIELDS, 'process.');
  if (Array.isArray(doc.hosts))
    for (const [i, h] of doc.hosts.entries()) check(h, HOST_FIELDS, `hosts[${i}].`);
  return warnings;
}

/** What instances may speak: HTTP/1.1, or HTTP/2 without TLS by prior knowledge. */
const PROTOCOLS: ReadonlySet<unknown> = new Set(['http/1.1', 'h2c']);

/** Variable names a program can be given: no `=`, no NUL, not empty. */
const ENV_NAME = /^[^=\0]+$/;

/** The most seconds `stopTimeout` may be: an hour. */
const MAX_STOP_TIMEOUT = 3600;

/** `env`, `cwd`, `ready`, `stopTimeout` and `revision`: all optional. */
function validateDeployFields(
  doc: Record<string, unknown>,
  fail: (field: string, message: string) => void,
): Pick<App, 'env' | 'cwd' | 'ready' | 'stopTimeout' | 'revision'> {
  const out: Pick<App, 'env' | 'cwd' | 'ready' | 'stopTimeout' | 'revision'> = {};
  if (doc.env !== undefined) {
    if (!isRecord(doc.env)) {
      fail('env', 'must be an object of string values');
    } else {
      const env: Record<string, string> = {};
      let ok = true;
      for (const [k, v] of Object.entries(doc.env)) {
        // The names are shown (never the values: they may be secrets).
        if (!ENV_NAME.test(k)) {
          fail('env', `${JSON.stringify(k)} is not a variable name (no "=", no NUL, not empty)`);
          ok = false;
        } else if (k === 'PORT' || k.startsWith('ARR_')) {
          fail(
            `env.${k}`,
            k === 'PORT'
              ? 'is set by arr (the port it gives the instance)'
              : 'ARR_* variables configure arr and are not given to apps',
          );
          ok = false;
        } else if (typeof v !== 'string') {
          fail(`env.${k}`, 'must be a string');
          ok = false;
        } else if (v.includes('\0')) {
          fail(`env.${k}`, NUL_BYTE);
          ok = false;
        } else env[k] = v;
      }
      if (ok) out.env = env;
    }
  }
  if (doc.cwd !== undefined) {
    if (typeof doc.cwd !== 'string' || doc.cwd.trim() === '') fail('cwd', 'must be a non-empty path');
    else if (doc.cwd.includes('\0')) fail('cwd', NUL_BYTE);
    else out.cwd = doc.cwd;
  }
  if (doc.ready !== undefined) {
    const ready = httpPath(doc.ready);
    if ('problem' in ready) fail('ready', ready.problem);
    else out.ready = ready.value;
  }
  if (doc.stopTimeout !== undefined) {
    const t = doc.stopTimeout;
    if (typeof t !== 'number' || !Number.isFinite(t) || t < 0 || t > MAX_STOP_TIMEOUT)
      fail(
        'stopTimeout',
        `must be a number of seconds from 0 to ${MAX_STOP_TIMEOUT} (got ${JSON.stringify(t)})`,
      );
    else out.stopTimeout = t;
  }
  if (doc.revision !== undefined) {
    const r = doc.revision;
    if (typeof r !== 'number' || !Number.isSafeInteger(r) || r < 0)
      fail('revision', `must be a whole number of at least 0 (got ${JSON.stringify(r)})`);
    else out.revision = r;
  }
  return out;
}

/** The UTF-8 size of a command line, as the kernel counts it against its limits (less the NULs). */
function commandBytes(executable: string, args: string[]): number {
  return args.reduce((n, a) => n + Buffer.byteLength(a), Buffer.byteLength(executable));
}

/** An optional `user` or `group`: a name as /etc/passwd and /etc/group hold them, or a number. */
function optionalAccount(
  v: unknown,
  field: 'user' | 'group',
  fail: (field: string, message: string) => void,
): string | undefined {
  if (v === undefined) return undefined;
  if (typeof v === 'string' && (ACCOUNT_NAME.test(v) || (NUMERIC_ID.test(v) && Number(v) < 2 ** 32 - 1)))
    return v;
  const what = field === 'user' ? 'a user name or a numeric uid' : 'a group name or a numeric gid';
  fail(field, `must be ${what}, as a string (got ${JSON.stringify(v)})`);
  return undefined;
}

function validateHost(
  h: unknown,
  path: string,
  fail: (field: string, message: string) => void,
): HostRule | undefined {
  if (!isRecord(h)) {
    fail(path, 'not an object with "host" and "ssl"');
    return undefined;
  }
  let ok = true;
  let host = '';
  if (typeof h.host !== 'string') {
    fail(`${path}.host`, 'missing or not a string');
    ok = false;
  } else {
    host = normaliseHostName(h.host.trim());
    if (host.includes('*')) {
      if (!isWildcardName(host)) {
        fail(
          `${path}.host`,
          `"${h.host}" is not a valid wildcard host: "*" must be the whole leftmost label, followed by two labels or more, as in "*.example.com"`,
        );
        ok = false;
      }
    } else if (!isValidHostName(host)) {
      fail(`${path}.host`, `"${h.host}" is not a valid host name`);
      ok = false;
    }
  }
  const ssl = typeof h.ssl === 'string' ? SSL_SPELLINGS[h.ssl.toLowerCase()] : undefined;
  if (ssl === undefined) {
    fail(`${path}.ssl`, `must be "allowed", "required" or "none" (got ${JSON.stringify(h.ssl)})`);
    ok = false;
  }
  const hasCert = h.cert !== undefined && h.cert !== null && h.cert !== '';
  const hasKey = h.key !== undefined && h.key !== null && h.key !== '';
  if (hasCert && typeof h.cert !== 'string') {
    fail(`${path}.cert`, 'must be a file path');
    ok = false;
  }
  if (hasKey && typeof h.key !== 'string') {
    fail(`${path}.key`, 'must be a file path');
    ok = false;
  }
  if (hasCert !== hasKey) {
    fail(hasCert ? `${path}.key` : `${path}.cert`, 'cert and key go together: give both or neither');
    ok = false;
  }
  if (h.acme !== undefined && typeof h.acme !== 'boolean') {
    fail(`${path}.acme`, 'must be true or false');
    ok = false;
  }
  if (!ok || ssl === undefined) return undefined;
  const rule: HostRule = { host, ssl };
  if (h.acme === false) rule.acme = false;
  if (hasCert && hasKey) {
    rule.cert = h.cert as string;
    rule.key = h.key as string;
  }
  return rule;
}

/** The `machines` array of a stored document, or undefined when it is malformed. */
export function parseMachines(v: unknown): InstanceAddress[] | undefined {
  if (!Array.isArray(v)) return undefined;
  const out: InstanceAddress[] = [];
  for (const m of v) {
    if (!isRecord(m) || typeof m.host !== 'string' || typeof m.port !== 'number') return undefined;
    out.push({ host: m.host, port: m.port });
  }
  return out;
}
