import type { IncomingMessage } from 'node:http';
import { clientAddress } from './proxy-protocol.js';

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
export function forwardedValues(req: IncomingMessage, secure: boolean): Forwarded {
  // The socket's peer, or what a PROXY header announced (--trust-proxy-protocol).
  const address = clientAddress(req.socket) ?? '';
  // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; apps expect a.b.c.d.
  const client = address.startsWith('::ffff:') ? address.slice(7) : address;
  const prior = req.headers['x-forwarded-for'];
  return {
    for: prior ? `${prior}, ${client}` : client,
    proto: secure ? 'https' : 'http',
    host: req.headers.host ?? '',
    port: String(req.socket.localPort ?? ''),
  };
}

/** Sets the X-Forwarded-* headers on the request itself (upgrades, proxied by http-proxy). */
export function setForwardedHeaders(req: IncomingMessage, secure: boolean): void {
  const f = forwardedValues(req, secure);
  const headers = req.headers;
  headers['x-forwarded-for'] = f.for;
  headers['x-forwarded-proto'] = f.proto;
  headers['x-forwarded-host'] = f.host;
  headers['x-forwarded-port'] = f.port;
}
