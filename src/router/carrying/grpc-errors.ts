import type { OutgoingHttpHeaders } from 'node:http';
import { type DownstreamRequest, type DownstreamResponse, isH2Response } from './downstream.js';
import { sendError } from './respond.js';

/**
 * arr's own answers to gRPC requests (`content-type: application/grpc...`, gRPC-Web included),
 * in gRPC's terms, as Envoy gives them: HTTP 200 with `grpc-status` and `grpc-message` in the
 * head, which ends the stream ("trailers-only"). A gRPC client reports a bare 502 as an
 * HTTP error ("Received http2 header with status: 502"), not as the UNAVAILABLE it can retry.
 */

/** gRPC status codes (grpc/doc/statuscodes.md). */
const GRPC = {
  UNKNOWN: 2,
  DEADLINE_EXCEEDED: 4,
  PERMISSION_DENIED: 7,
  RESOURCE_EXHAUSTED: 8,
  UNIMPLEMENTED: 12,
  INTERNAL: 13,
  UNAVAILABLE: 14,
  UNAUTHENTICATED: 16,
} as const;

/**
 * The code of each of arr's statuses: the mapping of gRPC's http-grpc-status-mapping.md, except
 * arr's own timeouts (504, 408), which are the deadline it enforces, and 429, which arr sends
 * only for its rate limits (a quota: RESOURCE_EXHAUSTED, which clients do not retry at once as
 * they may UNAVAILABLE; Envoy's `rate_limited_as_resource_exhausted`).
 */
const CODES: Record<number, number> = {
  400: GRPC.INTERNAL,
  401: GRPC.UNAUTHENTICATED,
  403: GRPC.PERMISSION_DENIED,
  404: GRPC.UNIMPLEMENTED,
  408: GRPC.DEADLINE_EXCEEDED,
  413: GRPC.RESOURCE_EXHAUSTED,
  421: GRPC.UNAVAILABLE,
  429: GRPC.RESOURCE_EXHAUSTED,
  500: GRPC.INTERNAL,
  502: GRPC.UNAVAILABLE,
  503: GRPC.UNAVAILABLE,
  504: GRPC.DEADLINE_EXCEEDED,
};

/** Whether a request is gRPC (or gRPC-Web): its content type says so. */
export function isGrpc(req: DownstreamRequest): boolean {
  const type = req.headers['content-type'];
  return type !== undefined && type.length >= 16 && type.toLowerCase().startsWith('application/grpc');
}

/**
 * arr's answer to a request it cannot serve: in gRPC's terms for a gRPC request, else the
 * plain-text answer of respond.ts. Only on the error path: a request served pays nothing.
 */
export function refuseRequest(
  req: DownstreamRequest,
  res: DownstreamResponse,
  status: number,
  message: string,
  headers?: Record<string, string>,
): void {
  if (!isGrpc(req) || res.headersSent || res.destroyed) {
    sendError(res, status, message, headers);
    return;
  }
  const h2 = isH2Response(res);
  const head = grpcHead(req, status, message);
  // The fields of the refusal (WWW-Authenticate, Retry-After, an auth service's) are metadata.
  if (headers !== undefined)
    for (const name of Object.keys(headers))
      if (!(name in head) && !(h2 && name === 'connection')) head[name] = headers[name];
  if (h2) res.endWithHead = true;
  else head['content-length'] = '0';
  try {
    res.writeHead(200, head);
  } catch {
    // A field an auth service gave that Node will not send: the answer without them.
    const bare = grpcHead(req, status, message);
    if (!h2) bare['content-length'] = '0';
    res.writeHead(200, bare);
  }
  if (!h2) res.end();
}

/** The status fields, after the Content-Type of a head (`req`) or alone (trailers). */
function grpcHead(req: DownstreamRequest | undefined, status: number, message: string): OutgoingHttpHeaders {
  const head: OutgoingHttpHeaders = Object.create(null);
  if (req !== undefined) head['content-type'] = req.headers['content-type'];
  head['grpc-status'] = String(CODES[status] ?? GRPC.UNKNOWN);
  head['grpc-message'] = percentEncoded(message);
  return head;
}

/**
 * A gRPC call over HTTP/2 whose answer has begun and that arr must end (the client's stream
 * passed `maxBodySize`): trailers with the status, as the instance would end it, rather than a
 * reset a client reports as INTERNAL. False when the request is not gRPC or the stream can no
 * longer take trailers: the caller resets it.
 */
export function endGrpcCall(
  req: DownstreamRequest,
  res: DownstreamResponse,
  status: number,
  message: string,
): boolean {
  if (!isGrpc(req) || !isH2Response(res) || res.destroyed || res.stream.writableEnded) return false;
  res.addTrailers(grpcHead(undefined, status, message));
  res.end();
  return true;
}

/** grpc-message's encoding: bytes outside printable ASCII, and `%`, as %XX (UTF-8). */
function percentEncoded(message: string): string {
  let out = '';
  for (const byte of Buffer.from(message)) {
    out +=
      byte >= 0x20 && byte <= 0x7e && byte !== 0x25
        ? String.fromCharCode(byte)
        : `%${byte.toString(16).toUpperCase().padStart(2, '0')}`;
  }
  return out;
}
