import { parseCidr } from '../util/cidr.js';
import { isRecord } from '../util/is-record.js';
import type { AccessSpec, EdgeSpec, HeaderEdits, RedirectSpec } from './types.js';

type Fail = (field: string, message: string) => void;

/** The document fields of the edge policies (docs/policies.md). */
export const EDGE_FIELDS = ['access', 'headers', 'compress', 'maxBodySize', 'redirect'] as const;

/**
 * A bcrypt hash as `htpasswd -B` writes it ($2y$), or as other tools do ($2a$, $2b$): a cost
 * of 04 to 31 and 53 characters of salt and digest. MD5-crypt ($apr1$), SHA-1 ({SHA}) and
 * crypt(3) hashes are refused: they can be brute-forced.
 */
const BCRYPT = /^\$2[aby]\$(0[4-9]|[12]\d|3[01])\$[./A-Za-z0-9]{53}$/;

/** A field name (RFC 9110 §5.1: a token). */
const TOKEN = /^[!#$%&'*+.^_`|~0-9A-Za-z-]+$/;

/** A field value arr can send: visible characters, spaces and tabs, no CR, LF or NUL. */
const FIELD_VALUE = /^[\t\x20-\x7e\x80-\xff]*$/;

/**
 * Fields a `headers` edit cannot touch. Hop-by-hop fields and the framing (Content-Length,
 * Transfer-Encoding) belong to each connection; Host and the X-Forwarded-* fields are arr's
 * word to the instance (a request edit that changed them would let the document lie about the
 * client); Content-Encoding is compression's.
 */
const NOT_EDITABLE = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'trailer',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
  'content-length',
  'host',
  'expect',
]);
const NOT_EDITABLE_REQUEST = new Set(['forwarded', 'x-real-ip']);
const NOT_EDITABLE_RESPONSE = new Set(['content-encoding']);

/** What a rate may be at most: a million requests per second is no limit. */
const MAX_RATE = 1_000_000;

/**
 * Validates the edge-policy fields of a document. Returns the spec when there is at least one
 * policy (and no problem with them), undefined otherwise.
 */
export function validateEdge(doc: Record<string, unknown>, fail: Fail): EdgeSpec | undefined {
  const edge: EdgeSpec = {};
  let bad = false;
  const f: Fail = (field, message) => {
    bad = true;
    fail(field, message);
  };
  if (doc.access !== undefined) {
    const access = validateAccess(doc.access, f);
    if (access) edge.access = access;
  }
  if (doc.headers !== undefined) {
    if (!isRecord(doc.headers)) f('headers', 'must be an object with "request" and/or "response"');
    else {
      for (const k of Object.keys(doc.headers))
        if (k !== 'request' && k !== 'response') f(`headers.${k}`, 'is not a field: "request" or "response"');
      const request = headerEdits(doc.headers.request, 'headers.request', NOT_EDITABLE_REQUEST, f);
      const response = headerEdits(doc.headers.response, 'headers.response', NOT_EDITABLE_RESPONSE, f);
      if (request || response) edge.headers = { ...(request && { request }), ...(response && { response }) };
    }
  }
  if (doc.compress !== undefined) {
    if (typeof doc.compress !== 'boolean') f('compress', 'must be true or false');
    else if (doc.compress) edge.compress = true;
  }
  if (doc.maxBodySize !== undefined) {
    const n = doc.maxBodySize;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n < 0)
      f('maxBodySize', `must be a whole number of bytes (got ${JSON.stringify(n)})`);
    else edge.maxBodySize = n;
  }
  if (doc.redirect !== undefined) {
    const redirect = validateRedirect(doc.redirect, f);
    if (redirect) edge.redirect = redirect;
  }
  if (bad || Object.keys(edge).length === 0) return undefined;
  return edge;
}

function validateRedirect(v: unknown, fail: Fail): RedirectSpec | undefined {
  if (!isRecord(v)) {
    fail('redirect', 'must be an object with "to" (and "status")');
    return undefined;
  }
  let ok = true;
  const to = typeof v.to === 'string' ? httpUrl(v.to) : undefined;
  if (to === undefined || to.search !== '' || to.hash !== '') {
    fail('redirect.to', `must be an http(s) URL without query or fragment (got ${JSON.stringify(v.to)})`);
    ok = false;
  }
  const status = v.status ?? 302;
  if (status !== 301 && status !== 302 && status !== 307 && status !== 308) {
    fail('redirect.status', `must be 301, 302, 307 or 308 (got ${JSON.stringify(v.status)})`);
    ok = false;
  }
  if (!ok || to === undefined) return undefined;
  // The request's path follows: `https://new.example.com/` + `/a` is not `//a`.
  const base = (v.to as string).replace(/\/+$/, '');
  return { to: base, status: status as RedirectSpec['status'] };
}

function httpUrl(text: string): URL | undefined {
  try {
    const url = new URL(text);
    return url.protocol === 'http:' || url.protocol === 'https:' ? url : undefined;
  } catch {
    return undefined;
  }
}

function validateAccess(v: unknown, fail: Fail): AccessSpec | undefined {
  if (!isRecord(v)) {
    fail('access', 'must be an object (allow, deny, basicAuth, forwardAuth, rateLimit)');
    return undefined;
  }
  const out: AccessSpec = {};
  for (const k of Object.keys(v))
    if (!['allow', 'deny', 'basicAuth', 'forwardAuth', 'rateLimit'].includes(k))
      fail(`access.${k}`, 'is not a field: allow, deny, basicAuth, forwardAuth or rateLimit');
  for (const list of ['allow', 'deny'] as const) {
    const cidrs = v[list];
    if (cidrs === undefined) continue;
    if (!Array.isArray(cidrs)) {
      fail(`access.${list}`, 'must be an array of CIDRs such as "10.0.0.0/8" or "2001:db8::/32"');
      continue;
    }
    cidrs.forEach((c: unknown, i) => {
      if (typeof c !== 'string' || parseCidr(c) === undefined)
        fail(`access.${list}[${i}]`, `${JSON.stringify(c)} is not a CIDR`);
    });
    out[list] = cidrs as string[];
  }
  if (v.basicAuth !== undefined) {
    const basic = validateBasicAuth(v.basicAuth, fail);
    if (basic) out.basicAuth = basic;
  }
  if (v.forwardAuth !== undefined) {
    const fa = v.forwardAuth;
    if (!isRecord(fa)) fail('access.forwardAuth', 'must be an object with "url"');
    else {
      const url = typeof fa.url === 'string' ? httpUrl(fa.url) : undefined;
      if (url === undefined || url.username !== '' || url.password !== '')
        fail('access.forwardAuth.url', 'must be an http(s) URL (without user or password)');
      const names = fa.responseHeaders ?? [];
      if (!Array.isArray(names) || !names.every((n) => typeof n === 'string' && TOKEN.test(n)))
        fail('access.forwardAuth.responseHeaders', 'must be an array of header names');
      else if (url !== undefined)
        out.forwardAuth = { url: fa.url as string, responseHeaders: (names as string[]).map(lower) };
    }
  }
  if (v.rateLimit !== undefined) {
    const r = v.rateLimit;
    if (!isRecord(r))
      fail('access.rateLimit', 'must be an object with "requests" (and "perSeconds", "burst")');
    else {
      const requests = r.requests;
      const per = r.perSeconds ?? 1;
      const burst = r.burst ?? requests;
      const whole = (n: unknown) =>
        typeof n === 'number' && Number.isSafeInteger(n) && n >= 1 && n <= MAX_RATE;
      let ok = true;
      if (!whole(requests)) {
        fail(
          'access.rateLimit.requests',
          `must be a whole number from 1 to ${MAX_RATE} (got ${JSON.stringify(requests)})`,
        );
        ok = false;
      }
      if (typeof per !== 'number' || !Number.isFinite(per) || per <= 0 || per > 86_400) {
        fail(
          'access.rateLimit.perSeconds',
          `must be a number of seconds over 0, at most 86400 (got ${JSON.stringify(per)})`,
        );
        ok = false;
      }
      if (r.burst !== undefined && !whole(burst)) {
        fail(
          'access.rateLimit.burst',
          `must be a whole number from 1 to ${MAX_RATE} (got ${JSON.stringify(burst)})`,
        );
        ok = false;
      }
      if (ok)
        out.rateLimit = { requests: requests as number, perSeconds: per as number, burst: burst as number };
    }
  }
  return Object.keys(out).length > 0 ? out : undefined;
}

function validateBasicAuth(v: unknown, fail: Fail): AccessSpec['basicAuth'] {
  if (!isRecord(v) || !isRecord(v.users)) {
    fail('access.basicAuth', 'must be an object with "users": { name: bcrypt hash }');
    return undefined;
  }
  let ok = true;
  const realm = v.realm ?? 'arr';
  if (typeof realm !== 'string' || !/^[\x20-\x7e]{1,128}$/.test(realm) || /["\\]/.test(realm)) {
    fail('access.basicAuth.realm', 'must be up to 128 printable characters, without " or \\');
    ok = false;
  }
  const users = Object.entries(v.users);
  if (users.length === 0) {
    fail('access.basicAuth.users', 'must name at least one user');
    ok = false;
  }
  for (const [name, hash] of users) {
    // The hash itself is never quoted back: it is a secret of sorts.
    if (name === '' || name.includes(':') || !/^[\x20-\x7e\x80-\uffff]+$/.test(name)) {
      fail(
        'access.basicAuth.users',
        `${JSON.stringify(name)} is not a user name (not empty, no ":" or control characters)`,
      );
      ok = false;
    } else if (typeof hash !== 'string' || !BCRYPT.test(hash)) {
      fail(
        `access.basicAuth.users.${name}`,
        'is not a bcrypt hash ($2a$, $2b$ or $2y$, as `htpasswd -B` makes); other schemes are refused',
      );
      ok = false;
    }
  }
  return ok
    ? { realm: realm as string, users: Object.fromEntries(users) as Record<string, string> }
    : undefined;
}

function headerEdits(v: unknown, field: string, forbidden: Set<string>, fail: Fail): HeaderEdits | undefined {
  if (v === undefined) return undefined;
  if (!isRecord(v)) {
    fail(field, 'must be an object of header name -> value (a string) or null (remove it)');
    return undefined;
  }
  // No prototype: a name such as `__proto__` is a field like any other.
  const out: HeaderEdits = Object.create(null);
  let ok = true;
  for (const [name, value] of Object.entries(v)) {
    const key = lower(name);
    if (!TOKEN.test(name)) {
      fail(field, `${JSON.stringify(name)} is not a header name`);
      ok = false;
    } else if (NOT_EDITABLE.has(key) || forbidden.has(key) || key.startsWith('x-forwarded-')) {
      fail(`${field}.${name}`, 'cannot be set or removed: arr sets it, or it belongs to the connection');
      ok = false;
    } else if (value !== null && (typeof value !== 'string' || !FIELD_VALUE.test(value))) {
      fail(`${field}.${name}`, 'must be a string without CR, LF or NUL, or null to remove it');
      ok = false;
    } else if (key in out) {
      fail(`${field}.${name}`, 'is given twice (names are case-insensitive)');
      ok = false;
    } else out[key] = value as string | null;
  }
  return ok && Object.keys(out).length > 0 ? out : undefined;
}

function lower(s: string): string {
  return s.toLowerCase();
}

/**
 * The names of an app's policies (`allow`, `basicAuth`, `compress`...), as `arr apps`, the
 * dashboard and /api/overview show them: which policies, never their hashes, URLs or values.
 */
export function policyNames(spec: EdgeSpec | undefined): string[] {
  if (spec === undefined) return [];
  const a = spec.access;
  const names: string[] = [];
  if (a?.allow) names.push('allow');
  if (a?.deny) names.push('deny');
  if (a?.rateLimit) names.push('rateLimit');
  if (a?.basicAuth) names.push('basicAuth');
  if (a?.forwardAuth) names.push('forwardAuth');
  if (spec.headers) names.push('headers');
  if (spec.compress) names.push('compress');
  if (spec.maxBodySize !== undefined) names.push('maxBodySize');
  if (spec.redirect) names.push('redirect');
  return names;
}
