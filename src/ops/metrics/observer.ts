import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { clientAddress } from '../../router/accepting/proxy-protocol.js';
import { type DownstreamRequest, isH2, isH2Response } from '../../router/carrying/downstream.js';
import type { H2Response } from '../../router/carrying/h2-messages.js';
import { connectionOf } from '../../router/carrying/headers.js';
import type { ExchangeObserver } from '../../router/deciding/observer.js';
import type { Logger } from '../../util/log.js';
import { type ExchangeMetrics, NO_APP, type Protocol } from './exchange-metrics.js';
import { type TrafficSink, UNKNOWN_HOST } from './traffic.js';

/** What is known of an upgrade until its connection closes. */
interface UpgradeState {
  name: string;
  /** The app's id, for the dashboard's traffic (undefined: no app owns the host). */
  id: string | undefined;
  /** The status of its answer; 0 until it has one. */
  status: number;
}

const UPGRADE = Symbol('arr.upgrade');
type ObservedSocket = Duplex & { [UPGRADE]?: UpgradeState };

/** One access-log line's fields. */
interface Access {
  method: string | undefined;
  host: string | null;
  path: string | undefined;
  status: number;
  bytes: number;
  ms: number;
  app: string;
  client: string | null;
  protocol: Protocol;
  websocket?: true;
  /** A gRPC answer's status (its `grpc-status`, in the trailers or a trailers-only head). */
  grpcStatus?: string;
}

/** The grpc-status an HTTP/2 stream's answer carried (read once, when its line is written). */
function grpcStatusOf(res: H2Response): string | undefined {
  const stream = res.stream;
  const value = stream.sentTrailers?.['grpc-status'] ?? stream.sentHeaders?.['grpc-status'];
  return value === undefined ? undefined : String(value);
}

function protocolOf(req: DownstreamRequest): Protocol {
  return isH2(req) ? 'h2' : 'http/1.1';
}

/**
 * The observer for what is on, or undefined when neither metrics nor the access log are (the
 * router then does no work at all for them). The access log writes at info: with a log level
 * above info it is off.
 */
export function createObserver(
  metrics: ExchangeMetrics | undefined,
  accessLog: Logger | undefined,
  traffic?: TrafficSink,
): ExchangeObserver | undefined {
  const log = accessLog?.isLevelEnabled('info') ? accessLog : undefined;
  if (!metrics && !log) return undefined;
  const write = log ? accessWriter(log) : undefined;
  return {
    request(req, res, app) {
      const began = performance.now();
      const name = app?.name ?? NO_APP;
      const protocol = protocolOf(req);
      metrics?.protocol(protocol);
      // On HTTP/2 the connection is shared by streams: its bytes are counted by the stream's
      // response (h2-messages.ts), body bytes only (heads are compressed connection-wide).
      const socket = connectionOf(req);
      const before = write ? socket.bytesWritten : 0;
      const client = write ? (clientAddress(socket) ?? null) : null;
      res.once('close', () => {
        const seconds = (performance.now() - began) / 1000;
        // What the client got: an answer cut short (the instance broke it off, or the client
        // left) counts as none.
        const status = res.headersSent && res.writableFinished ? res.statusCode : 0;
        metrics?.request(name, status, seconds);
        traffic?.request(app ? app.id : UNKNOWN_HOST, status, seconds);
        write?.({
          method: req.method,
          host: req.headers.host ?? null,
          path: req.url,
          status,
          bytes: isH2Response(res) ? res.bodyBytes : socket.bytesWritten - before,
          ms: seconds * 1000,
          app: name,
          client,
          protocol,
          // Read only when the line is written (write?.() evaluates nothing otherwise).
          grpcStatus: isH2Response(res) ? grpcStatusOf(res) : undefined,
        });
      });
    },

    upgrade(req, socket, app) {
      const began = performance.now();
      const name = app?.name ?? NO_APP;
      const protocol = protocolOf(req);
      metrics?.protocol(protocol);
      const client = write ? (clientAddress(protocol === 'h2' ? connectionOf(req) : socket) ?? null) : null;
      const state: UpgradeState = { name, id: app?.id, status: 0 };
      (socket as ObservedSocket)[UPGRADE] = state;
      socket.once('close', () => {
        const status = state.status;
        if (status === 0) metrics?.upgrade(name, 0);
        else if (status === 101) {
          metrics?.websocketClosed(name);
          if (state.id !== undefined) traffic?.websocketClosed(state.id);
        }
        write?.({
          method: req.method,
          host: req.headers.host ?? null,
          path: req.url,
          status,
          bytes: (socket as Partial<Socket>).bytesWritten ?? 0,
          ms: performance.now() - began,
          app: name,
          client,
          protocol,
          websocket: true,
        });
      });
    },

    upgradeAnswered(socket, status) {
      const state = (socket as ObservedSocket)[UPGRADE];
      if (state?.status !== 0) return;
      state.status = status;
      metrics?.upgrade(state.name, status);
      if (status === 101) {
        metrics?.websocketOpened(state.name);
        if (state.id !== undefined) traffic?.websocketOpened(state.id);
      }
    },

    proxyError(app, unreachable) {
      metrics?.proxyError(app.name, unreachable ? 'unreachable' : 'failed');
    },

    policyRefused(app, reason) {
      metrics?.policyRefused(app.name, reason);
    },
  };
}

/**
 * Access lines: in JSON (stdout not a terminal) each field is its own key beside a readable
 * message; on a terminal the message alone, so that each exchange stays on one line.
 */
function accessWriter(log: Logger): (a: Access) => void {
  const fields = !process.stdout.isTTY;
  return (a) => {
    a.ms = Math.round(a.ms * 10) / 10;
    const msg = `${a.client ?? '-'} ${a.method} ${a.host ?? '-'}${a.path} ${a.protocol === 'h2' ? 'h2 ' : ''}${a.websocket ? 'ws ' : ''}${a.status}${a.grpcStatus === undefined ? '' : ` grpc-status ${a.grpcStatus}`} ${a.bytes} B ${a.ms} ms ${a.app}`;
    if (fields) log.info(a, msg);
    else log.info(msg);
  };
}
