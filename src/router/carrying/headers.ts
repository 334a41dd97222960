import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { Socket } from 'node:net';
import { clientAddress } from '../accepting/proxy-protocol.js';
import { type DownstreamRequest, isH2 } from './downstream.js';
import { CONNECTION } from './h2-messages.js';

/** Where an HTTP/2 request keeps its connection's TLS socket (h2-messages.ts, which defines it). */
export { CONNECTION };

/** The connection a request came on (its TLS socket, for HTTP/1.1 and HTTP/2 alike). */
export function connectionOf(req: DownstreamRequest): Socket {
  return (isH2(req) ? req[CONNECTION] : undefined) ?? (req.socket as Socket);
}

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, so neither side's are
 * passed to the other. A proxy also drops the fields its Connection header names.
 */
export const HOP_BY_HOP: ReadonlySet<string> = new Set([
  'connection',
  'keep-alive',
  'proxy-connection',
  'te',
  'transfer-encoding',
  'upgrade',
  'http2-settings',
]);

/**
 * Request fields arr writes itself. Host may have been rewritten from an absolute-form target;
 * Expect was answered by arr already (100 Continue), so the instance is not asked again.
 */
const SET_BY_ARR = new Set([
  'host',
  'expect',
  'x-forwarded-for',
  'x-forwarded-proto',
  'x-forwarded-host',
  'x-forwarded-port',
]);

/**
 * Request fields a client may send but no instance gets: arr does not set them, and an app that
 * read them would take the client's word for where the request came from. Instances get
 * X-Forwarded-* (set by arr) only. X-Forwarded-User is set by arr after basic auth
 * (src/router/deciding/policy) and is never the client's word, on any app.
 */
const CLIENT_CLAIMS = new Set(['forwarded', 'x-real-ip', 'x-forwarded-user']);

/** Every request field dropped by its name alone: one lookup per field. */
const NOT_PASSED = new Set([...HOP_BY_HOP, ...SET_BY_ARR, ...CLIENT_CLAIMS]);

/**
 * A field name with "_" is dropped (nginx's default, `underscores_in_headers off`): CGI and WSGI
 * turn "-" and "_" alike into "_", so that an app would read `X_Forwarded_Proto: https` as
 * X-Forwarded-Proto, merged with arr's.
 */
function hasUnderscore(name: string): boolean {
  return name.indexOf('_') !== -1;
}

/** Names a Connection header lists beyond the usual "keep-alive" and "close"; undefined if none. */
function connectionOptions(value: string | undefined): Set<string> | undefined {
  if (value === undefined) return undefined;
  const lower = value.toLowerCase();
  if (lower === 'keep-alive' || lower === 'close') return undefined;
  const names = new Set<string>();
  for (const token of lower.split(',')) {
    const name = token.trim();
    if (name && name !== 'keep-alive' && name !== 'close') names.add(name);
  }
  return names.size > 0 ? names : undefined;
}

/** The X-Forwarded-* values an instance is told about one request. */
export interface Forwarded {
  for: string;
  proto: string;
  host: string;
  port: string;
}

/**
 * For is appended to (a chain of proxies); Proto, Host and Port describe the connection arr
 * accepted and replace whatever the client sent, which is never passed through as truth.
 */
export function forwardedValues(req: DownstreamRequest, secure: boolean): Forwarded {
  // The socket's peer, or what a PROXY header announced (--trust-proxy-protocol).
  const socket = connectionOf(req);
  const address = clientAddress(socket) ?? '';
  // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; apps expect a.b.c.d.
  const client = address.startsWith('::ffff:') ? address.slice(7) : address;
  const prior = req.headers['x-forwarded-for'];
  return {
    for: prior ? `${prior}, ${client}` : client,
    proto: secure ? 'https' : 'http',
    host: req.headers.host ?? '',
    port: String(socket.localPort ?? ''),
  };
}

/**
 * The header list an instance gets for a request, flat ([name, value, name, value...]) as the
 * client sent it, less hop-by-hop fields, the fields its Connection header names, client claims
 * (Forwarded, X-Real-IP) and names with "_", with Host and the X-Forwarded-* fields set by arr.
 */
export function requestHeaders(req: DownstreamRequest, secure: boolean): string[] {
  const raw = req.rawHeaders;
  const named = connectionOptions(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (NOT_PASSED.has(lower) || hasUnderscore(lower) || named?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
  return withForwarded(out, req, secure);
}

/**
 * The same for an HTTP/2 request (an instance gets HTTP/1.1): pseudo-header fields (`:method`,
 * `:authority`...) are not fields, the Host is the `:authority` (h2.ts put it in `headers.host`),
 * and the cookie crumbs an HTTP/2 client may send as separate fields (RFC 9113 §8.2.3) are one
 * Cookie field again, as HTTP/1.1 apps expect. HTTP/2 has no Connection field (a request with
 * one is refused by Node), so there are no named options to drop.
 */
export function h2RequestHeaders(req: DownstreamRequest, secure: boolean): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  let cookie = false;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.charCodeAt(0) === 58 /* : */) continue;
    const lower = name.toLowerCase();
    if (NOT_PASSED.has(lower) || hasUnderscore(lower)) continue;
    if (lower === 'cookie') {
      if (!cookie) out.push('cookie', String(req.headers.cookie));
      cookie = true;
      continue;
    }
    out.push(name, raw[i + 1]!);
  }
  // HTTP/2 over TLS, or by prior knowledge on the plain port (h2c).
  return withForwarded(out, req, secure);
}

/**
 * The same rules for a request passed on from `req.headers` (WebSocket upgrades, `OPTIONS *`): it
 * sends `req.headers`, so the fields no instance gets are deleted from them. Connection keeps
 * only what the exchange needs: `Upgrade` for an upgrade (with its Upgrade field), else `close`
 * or `keep-alive` if the client said so (http-proxy answers the client by it). Transfer-Encoding
 * stays (node:http frames the piped body by it), and Host and the X-Forwarded-* fields are left
 * to the caller.
 */
export function dropUnpassedHeaders(req: DownstreamRequest): void {
  const headers: IncomingHttpHeaders = req.headers;
  const connection = headers.connection?.toLowerCase().split(',');
  const named = connectionOptions(headers.connection);
  // An upgrade lists Upgrade in Connection (RFC 9110 §7.8), as node:http requires to call it one.
  const upgrade = named?.has('upgrade') ? headers.upgrade : undefined;
  for (const name of Object.keys(headers)) {
    if (SET_BY_ARR.has(name) || name === 'transfer-encoding') continue;
    if (NOT_PASSED.has(name) || hasUnderscore(name) || named?.has(name)) delete headers[name];
  }
  if (upgrade !== undefined) {
    headers.upgrade = upgrade;
    headers.connection = 'Upgrade';
  } else if (connection?.some((t) => t.trim() === 'close')) headers.connection = 'close';
  else if (connection?.some((t) => t.trim() === 'keep-alive')) headers.connection = 'keep-alive';
}

/**
 * The header list a client gets for an instance's answer, from the raw lines undici read:
 * as sent, less hop-by-hop fields (Node frames the body for the client itself).
 */
export function responseHeaders(raw: Buffer[]): string[] {
  const out: string[] = [];
  let connection: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1');
    const value = raw[i + 1]!.toString('latin1');
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower)) {
      if (lower === 'connection') connection = value;
      continue;
    }
    out.push(name, value);
  }
  const named = connectionOptions(connection);
  return named ? withoutNamed(out, named) : out;
}

/**
 * The same for an HTTP/2 client (h2-messages.ts): one object of lower-case names, a repeated
 * field's values in an array (Set-Cookie), as node:http2's `stream.respond` takes it. The object
 * has no prototype, so that no field name (`__proto__`) can be anything but a field.
 */
export function h2ResponseHeaders(raw: Buffer[]): OutgoingHttpHeaders {
  const out: OutgoingHttpHeaders = Object.create(null);
  let connection: string | undefined;
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!.toString('latin1').toLowerCase();
    const value = raw[i + 1]!.toString('latin1');
    if (HOP_BY_HOP.has(name)) {
      if (name === 'connection') connection = value;
      continue;
    }
    const prior = out[name];
    if (prior === undefined) out[name] = value;
    else if (Array.isArray(prior)) prior.push(value);
    else out[name] = [prior as string, value];
  }
  const named = connectionOptions(connection);
  if (named) for (const name of named) delete out[name];
  return out;
}

function withoutNamed(headers: string[], named: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!named.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}

/** Appends the Host and the X-Forwarded-* fields arr sets to an instance's header list. */
function withForwarded(out: string[], req: DownstreamRequest, secure: boolean): string[] {
  const f = forwardedValues(req, secure);
  out.push(
    'host',
    req.headers.host ?? '',
    'x-forwarded-for',
    f.for,
    'x-forwarded-proto',
    f.proto,
    'x-forwarded-host',
    f.host,
    'x-forwarded-port',
    f.port,
  );
  return out;
}
