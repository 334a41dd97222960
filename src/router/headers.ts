import type { IncomingMessage } from 'node:http';
import { forwardedValues } from './forwarded.js';

/**
 * Hop-by-hop fields (RFC 9110 §7.6.1): they describe one connection, so neither side's are
 * passed to the other. A proxy also drops the fields its Connection header names.
 */
const HOP_BY_HOP = new Set([
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

/**
 * The header list an instance gets for a request, flat ([name, value, name, value...]) as the
 * client sent it, less hop-by-hop fields, with Host and the X-Forwarded-* fields set by arr.
 */
export function requestHeaders(req: IncomingMessage, secure: boolean): string[] {
  const raw = req.rawHeaders;
  const named = connectionOptions(req.headers.connection);
  const out: string[] = [];
  for (let i = 0; i + 1 < raw.length; i += 2) {
    const name = raw[i]!;
    const lower = name.toLowerCase();
    if (HOP_BY_HOP.has(lower) || SET_BY_ARR.has(lower) || named?.has(lower)) continue;
    out.push(name, raw[i + 1]!);
  }
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

function withoutNamed(headers: string[], named: Set<string>): string[] {
  const out: string[] = [];
  for (let i = 0; i < headers.length; i += 2) {
    if (!named.has(headers[i]!.toLowerCase())) out.push(headers[i]!, headers[i + 1]!);
  }
  return out;
}
