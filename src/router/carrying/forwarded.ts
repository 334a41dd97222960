import type { DownstreamRequest } from './downstream.js';
import { dropUnpassedHeaders, forwardedValues } from './headers.js';

/**
 * Prepares a request that is passed on from `req.headers` (WebSocket upgrades,
 * `OPTIONS *`): the fields no instance gets are deleted, as on the main path (requestHeaders),
 * and the X-Forwarded-* fields are set by arr.
 */
export function setForwardedHeaders(req: DownstreamRequest, secure: boolean): void {
  dropUnpassedHeaders(req);
  const f = forwardedValues(req, secure);
  const headers = req.headers;
  headers['x-forwarded-for'] = f.for;
  headers['x-forwarded-proto'] = f.proto;
  headers['x-forwarded-host'] = f.host;
  headers['x-forwarded-port'] = f.port;
}
