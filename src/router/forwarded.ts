import type { IncomingMessage } from 'node:http';
import { clientAddress } from './proxy-protocol.js';

/**
 * Sets the X-Forwarded-* headers the instance sees. For is appended to (a chain of proxies);
 * Proto, Host and Port describe the connection arr accepted and replace whatever the client
 * sent, which is never passed through as truth.
 */
export function setForwardedHeaders(req: IncomingMessage, secure: boolean): void {
  const headers = req.headers;
  // The socket's peer, or what a PROXY header announced (--trust-proxy-protocol).
  const address = clientAddress(req.socket) ?? '';
  // An IPv4 client of a dual-stack listener shows as ::ffff:a.b.c.d; apps expect a.b.c.d.
  const client = address.startsWith('::ffff:') ? address.slice(7) : address;
  const prior = headers['x-forwarded-for'];
  headers['x-forwarded-for'] = prior ? `${prior}, ${client}` : client;
  headers['x-forwarded-proto'] = secure ? 'https' : 'http';
  headers['x-forwarded-host'] = headers.host ?? '';
  headers['x-forwarded-port'] = String(req.socket.localPort ?? '');
}
