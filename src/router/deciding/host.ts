import type { IncomingMessage } from 'node:http';

/**
 * The host name a request is for: the Host header lower-cased, without its port and without a
 * trailing dot. Undefined when there is no usable Host header (the request gets a 400).
 */
export function hostName(header: string | undefined): string | undefined {
  if (!header) return undefined;
  let end = header.length;
  if (header.charCodeAt(0) === 91 /* [ */) {
    // An IPv6 literal: keep the brackets, drop what follows them.
    const close = header.indexOf(']');
    if (close < 0) return undefined;
    end = close + 1;
    if (end < header.length && header.charCodeAt(end) !== 58 /* : */) return undefined;
  } else {
    const colon = header.indexOf(':');
    if (colon >= 0) end = colon;
  }
  // What follows the name can only be a port: "app1.localhost:80:90" or ":8o" is no Host.
  if (end < header.length && !PORT.test(header.slice(end))) return undefined;
  if (end > 0 && header.charCodeAt(end - 1) === 46 /* . */) end--;
  if (end === 0) return undefined;
  const name = header.slice(0, end).toLowerCase();
  return VALID_HOST.test(name) ? name : undefined;
}

// Letters, digits, '-', '_', '.', and the brackets and colons of an IPv6 literal; anything
// else (spaces, control characters, non-ASCII) cannot name an app.
const VALID_HOST = /^(?:[a-z0-9_.-]{1,253}|\[[0-9a-f:.]+\])$/;
const PORT = /^:\d{0,5}$/;

/** True when a request has more than one Host header line (RFC 9112 §3.2: a 400). */
export function manyHosts(rawHeaders: string[]): boolean {
  let seen = 0;
  for (let i = 0; i < rawHeaders.length; i += 2) {
    const name = rawHeaders[i]!;
    if (name.length === 4 && name.toLowerCase() === 'host' && ++seen > 1) return true;
  }
  return false;
}

/**
 * An absolute-form request target (`GET http://app2.localhost/path HTTP/1.1`, RFC 9112 §3.2.2)
 * split into its authority and the origin-form path it stands for; undefined when the target
 * is not an http or https URL, or carries user info. The path is kept byte for byte (no
 * normalisation), as an origin-form target is.
 */
export function absoluteTarget(url: string): { authority: string; path: string } | undefined {
  const m = ABSOLUTE.exec(url);
  if (!m) return undefined;
  const rest = m[2] ?? '';
  return { authority: m[1]!, path: rest.startsWith('/') ? rest : `/${rest}` };
}

// scheme "://" authority (no '@', no '/', '?' or '#'), then the path and query, no fragment.
const ABSOLUTE = /^https?:\/\/([^/?#@]+)([/?][^#]*)?$/i;

/** A WebSocket opening handshake: GET with "Upgrade: websocket" (RFC 6455, section 4.1). */
export function isWebSocketUpgrade(req: IncomingMessage): boolean {
  const upgrade = req.headers.upgrade ?? '';
  return req.method === 'GET' && upgrade.split(',').some((p) => p.trim().toLowerCase() === 'websocket');
}
