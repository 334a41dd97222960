import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import type { Registry } from '../registry/registry.js';
import type { App } from '../registry/types.js';
import { hostName } from '../router/host.js';
import { clientAddress } from '../router/proxy-protocol.js';
import type { Logger } from '../util/log.js';
import { type Metrics, NO_APP } from './metrics.js';

/**
 * What the router tells about each exchange, for metrics and the access log. The router calls
 * it only when one of them is on; each call costs a clock reading and one 'close' listener.
 */
export interface ExchangeObserver {
  /** A request was admitted (with its app) or refused (without it: found again here if known). */
  request(req: IncomingMessage, res: ServerResponse, app: App | undefined): void;
  /** The same for a WebSocket upgrade, on the client's socket. */
  upgrade(req: IncomingMessage, socket: Duplex, app: App | undefined): void;
  /** An exchange with an instance of this app failed. */
  proxyError(appId: string, unreachable: boolean): void;
}

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
  websocket?: true;
}

/**
 * The observer for what is on, or undefined when neither metrics nor the access log are (the
 * router then does no work at all for them). The access log writes at info: with a log level
 * above info it is off.
 */
export function createObserver(
  registry: Registry,
  metrics: Metrics | undefined,
  accessLog: Logger | undefined,
): ExchangeObserver | undefined {
  const log = accessLog?.isLevelEnabled('info') ? accessLog : undefined;
  if (!metrics && !log) return undefined;
  const write = log ? accessWriter(log) : undefined;
  // A request refused by its host's policy (301, 403, 421) still counts for that host's app.
  const appOf = (req: IncomingMessage) => {
    const host = hostName(req.headers.host);
    return host ? registry.route(host)?.app : undefined;
  };
  return {
    request(req, res, app) {
      const began = performance.now();
      const name = (app ?? appOf(req))?.name ?? NO_APP;
      const socket = req.socket;
      const before = write ? socket.bytesWritten : 0;
      const client = write ? (clientAddress(socket) ?? null) : null;
      res.once('close', () => {
        const seconds = (performance.now() - began) / 1000;
        const status = res.headersSent ? res.statusCode : 0;
        metrics?.request(name, status, seconds);
        write?.({
          method: req.method,
          host: req.headers.host ?? null,
          path: req.url,
          status,
          bytes: socket.bytesWritten - before,
          ms: seconds * 1000,
          app: name,
          client,
        });
      });
    },

    upgrade(req, socket, app) {
      const began = performance.now();
      const name = (app ?? appOf(req))?.name ?? NO_APP;
      const client = write ? (clientAddress(socket) ?? null) : null;
      let status = 0;
      onAnswer(socket, (s) => {
        status = s;
        metrics?.upgrade(name, s);
        if (s === 101) metrics?.websocketOpened(name);
      });
      socket.once('close', () => {
        if (status === 0) metrics?.upgrade(name, 0);
        else if (status === 101) metrics?.websocketClosed(name);
        write?.({
          method: req.method,
          host: req.headers.host ?? null,
          path: req.url,
          status,
          bytes: (socket as Partial<Socket>).bytesWritten ?? 0,
          ms: performance.now() - began,
          app: name,
          client,
          websocket: true,
        });
      });
    },

    proxyError(appId, unreachable) {
      metrics?.proxyError(registry.app(appId)?.name ?? NO_APP, unreachable ? 'unreachable' : 'failed');
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
    const msg = `${a.client ?? '-'} ${a.method} ${a.host ?? '-'}${a.path} ${a.websocket ? 'ws ' : ''}${a.status} ${a.bytes} B ${a.ms} ms ${a.app}`;
    if (fields) log.info(a, msg);
    else log.info(msg);
  };
}

/**
 * Calls `seen` with the status of the first answer written on an upgrade's socket. Every
 * answer there, arr's own refusal or the instance's (passed on by http-proxy), begins with its
 * status line in the first write; the socket's own methods are put back at once.
 */
function onAnswer(socket: Duplex, seen: (status: number) => void): void {
  const { write, end } = socket;
  const peek = (chunk: unknown): void => {
    socket.write = write;
    socket.end = end;
    const head =
      typeof chunk === 'string'
        ? chunk.slice(0, 16)
        : chunk instanceof Uint8Array
          ? Buffer.from(chunk.buffer, chunk.byteOffset, Math.min(chunk.length, 16)).toString('latin1')
          : '';
    const m = /^HTTP\/\d\.\d (\d{3})/.exec(head);
    if (m) seen(Number(m[1]));
  };
  socket.write = function (this: Duplex, chunk: unknown, ...rest: unknown[]) {
    peek(chunk);
    return (write as (...a: unknown[]) => boolean).call(this, chunk, ...rest);
  } as Duplex['write'];
  socket.end = function (this: Duplex, chunk?: unknown, ...rest: unknown[]) {
    if (chunk === undefined || chunk === null || typeof chunk === 'function') {
      socket.write = write;
      socket.end = end;
    } else {
      peek(chunk);
    }
    return (end as (...a: unknown[]) => Duplex).call(this, chunk, ...rest);
  } as Duplex['end'];
}
