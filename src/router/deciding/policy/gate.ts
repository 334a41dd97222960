import type { IncomingHttpHeaders } from 'node:http';
import type { Duplex } from 'node:stream';
import type { App, EdgeSpec } from '../../../registry/types.js';
import { clientAddress } from '../../accepting/proxy-protocol.js';
import {
  type DownstreamRequest,
  type DownstreamResponse,
  isH2,
  isH2Response,
} from '../../carrying/downstream.js';
import { isGrpc, refuseRequest } from '../../carrying/grpc-errors.js';
import { connectionOf } from '../../carrying/headers.js';
import { sendError } from '../../carrying/respond.js';
import type { ExchangeObserver } from '../observer.js';
import { chooseEncoding, type Encoding } from './compress.js';
import {
  type EdgePolicies,
  type EdgePolicy,
  isRefusal,
  redirectLocation,
  type Verdict,
} from './edge-policy.js';
import { setOn } from './header-edits.js';
import type { PolicyRefusal } from './refusal.js';

/** An app with edge policies. */
export type EdgeApp = App & { edge: EdgeSpec };

/** What an exchange of an app with policies carries: the policies, and what they decided for this request. */
export interface EdgeRequest {
  policy: EdgePolicy;
  /** Fields set on the request by the access policies (X-Forwarded-User, forward auth's). */
  extra: string[] | undefined;
  /** The encoding the client accepts, when the app compresses and the request allows it. */
  encoding: Encoding | undefined;
}

/** Where a request that passed goes on: the router's exchange with an instance. */
export interface GateOwner {
  proxy(req: DownstreamRequest, res: DownstreamResponse, app: App, secure: boolean, edge: EdgeRequest): void;
  proxyUpgrade(
    req: DownstreamRequest,
    socket: Duplex,
    head: Buffer,
    app: App,
    secure: boolean,
    edge: EdgeRequest,
  ): void;
  refuseUpgrade(socket: Duplex, status: number, message: string, headers?: Record<string, string>): void;
}

/**
 * The edge policies of requests and WebSocket upgrades of apps that have them (the router calls
 * this only for those): the access policies in their order, then a redirect app's answer, or
 * the exchange with the edits and the encoding it needs.
 */
export class EdgeGate {
  constructor(
    private readonly policies: EdgePolicies,
    private readonly owner: GateOwner,
    private readonly observer: ExchangeObserver | undefined,
  ) {}

  request(req: DownstreamRequest, res: DownstreamResponse, app: EdgeApp, secure: boolean): void {
    const policy = this.policies.of(app);
    const verdict = policy.admit(req, addressOf(req), secure);
    if (verdict instanceof Promise)
      verdict.then(
        (v) => this.requestDecided(req, res, app, secure, policy, v),
        () => refuseRequest(req, res, 500, 'the request could not be checked'),
      );
    else this.requestDecided(req, res, app, secure, policy, verdict);
  }

  upgrade(req: DownstreamRequest, socket: Duplex, head: Buffer, app: EdgeApp, secure: boolean): void {
    const policy = this.policies.of(app);
    const verdict = policy.admit(req, addressOf(req), secure);
    if (verdict instanceof Promise) {
      socket.read(0); // a client that leaves while its credentials are checked is noticed
      verdict.then(
        (v) => this.upgradeDecided(req, socket, head, app, secure, policy, v),
        () => this.owner.refuseUpgrade(socket, 500, 'the request could not be checked'),
      );
    } else this.upgradeDecided(req, socket, head, app, secure, policy, verdict);
  }

  private requestDecided(
    req: DownstreamRequest,
    res: DownstreamResponse,
    app: App,
    secure: boolean,
    policy: EdgePolicy,
    v: Verdict,
  ): void {
    if (res.destroyed) return;
    if (isRefusal(v)) {
      this.observer?.policyRefused(app, v.reason);
      // On HTTP/2, a body still coming is refused with its stream (RST_STREAM NO_ERROR after the answer).
      if (isH2Response(res)) res.stopClient();
      sendRefusal(req, res, v, !isH2(req) && v.status === 413);
      return;
    }
    if (policy.redirect) {
      const r = policy.redirect;
      refuseRequest(req, res, r.status, `moved to ${r.to}`, { location: redirectLocation(r, req.url) });
      return;
    }
    const encoding =
      policy.compress && req.method !== 'HEAD' && req.headers.range === undefined
        ? chooseEncoding(req.headers['accept-encoding'])
        : undefined;
    this.owner.proxy(req, res, app, secure, { policy, extra: v.extra, encoding });
  }

  private upgradeDecided(
    req: DownstreamRequest,
    socket: Duplex,
    head: Buffer,
    app: App,
    secure: boolean,
    policy: EdgePolicy,
    v: Verdict,
  ): void {
    if (socket.destroyed) return;
    if (isRefusal(v)) {
      this.observer?.policyRefused(app, v.reason);
      this.owner.refuseUpgrade(socket, v.status, v.message, v.headers);
      return;
    }
    if (policy.redirect) {
      const r = policy.redirect;
      this.owner.refuseUpgrade(socket, r.status, `moved to ${r.to}`, {
        location: redirectLocation(r, req.url),
      });
      return;
    }
    this.owner.proxyUpgrade(req, socket, head, app, secure, { policy, extra: v.extra, encoding: undefined });
  }
}

/** A WebSocket upgrade's fields (req.headers, after arr's X-Forwarded-*), edited as the policies say. */
export function editUpgradeHeaders(headers: IncomingHttpHeaders, edge: EdgeRequest): void {
  edge.policy.request?.object(headers);
  if (edge.extra) setOn(headers, edge.extra);
}

function addressOf(req: DownstreamRequest): string {
  return clientAddress(connectionOf(req)) ?? '';
}

/**
 * A refusal: arr's sentence, or the auth service's own answer (its status, fields and body). A
 * gRPC call gets it in gRPC's terms (grpc-errors.ts): the status as a code, the fields as
 * metadata; an auth service's body, meant for a browser, is not a gRPC answer and is dropped.
 */
function sendRefusal(
  req: DownstreamRequest,
  res: DownstreamResponse,
  v: PolicyRefusal,
  close: boolean,
): void {
  if (v.body === undefined || isGrpc(req)) {
    refuseRequest(req, res, v.status, v.message, close ? { ...v.headers, connection: 'close' } : v.headers);
    return;
  }
  if (res.headersSent) {
    res.destroy();
    return;
  }
  const headers: Record<string, string | number> = { ...v.headers, 'content-length': v.body.length };
  try {
    res.writeHead(v.status, headers);
  } catch {
    sendError(res, 502, 'the auth service answered with fields that cannot be passed on');
    return;
  }
  res.end(v.body);
}
