import type { IncomingMessage, ServerResponse } from 'node:http';
import type { H2Request, H2Response } from './h2-messages.js';

/**
 * The client's side of an exchange, HTTP/1.1 or HTTP/2: the request and response the router,
 * the engine and arr's own answers read and write. On HTTP/1.1 they are node:http's objects; on
 * HTTP/2 arr's thin views of a stream (h2-messages.ts), which have the same names for what both
 * do (headers, url, method, socket, complete; writeHead, write, end, destroy, headersSent). The
 * few places that differ (the head's shape, trailers, the body's source) ask `isH2` once, which
 * narrows the type: no cast, and no wrapper made per request.
 */
export type DownstreamRequest = IncomingMessage | H2Request;
export type DownstreamResponse = ServerResponse | H2Response;

/** Whether a request came on an HTTP/2 stream. */
export function isH2(req: DownstreamRequest): req is H2Request {
  return req.httpVersionMajor === 2;
}

/** Whether a response answers an HTTP/2 stream. */
export function isH2Response(res: DownstreamResponse): res is H2Response {
  return 'stream' in res;
}
