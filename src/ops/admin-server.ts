import { createServer, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import type { AdminAddress } from '../config.js';
import type { Metrics } from './metrics.js';

/** Whether only this machine can reach the address. */
export function isLoopback(host: string): boolean {
  const h = host.toLowerCase();
  return h === 'localhost' || h === '::1' || /^(?:::ffff:)?127\./.test(h);
}

/**
 * Whether the admin endpoint answers a request with this Host header (undefined: none sent).
 * Against DNS rebinding: a web page in a browser on this machine, served from a name its owner
 * then points at 127.0.0.1, may send same-origin requests to the admin port and read the answers
 * (`/metrics`: the apps' names and traffic). Such a request carries that name in Host. So the
 * endpoint answers only `localhost`, an IP address (`127.0.0.1`, `[::1]`, or the address a
 * balancer probes by: a literal address cannot be rebound) and the `--admin` host itself, each
 * with or without a port. A request without Host (HTTP/1.0) cannot come from a browser, so it
 * is answered too, wherever the endpoint listens. (A bearer token admitting a request whatever
 * its Host can be added here.)
 */
export function admitsHost(host: string | undefined, adminAddress: AdminAddress): boolean {
  if (host === undefined) return true;
  const m = /^(?:\[([^\]]+)\]|([^:[\]]+))(?::\d{0,5})?$/.exec(host.trim().toLowerCase());
  if (!m) return false;
  if (m[1] !== undefined) return isIP(m[1]) === 6;
  const name = m[2]!;
  return name === 'localhost' || isIP(name) === 4 || name === adminAddress.host.toLowerCase();
}

/** What `/healthz` reports. */
export interface HealthSource {
  /** False once arr has begun to stop. */
  serving(): boolean;
  apps(): number;
  /** Instances running on this node. */
  instances(): number;
  registryReachable(): boolean;
}

export interface AdminServer {
  /** The port it listens on (the one picked, for port 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * The operator's endpoint, on its own listener (never on the public ports):
 * - `GET /healthz`: 200 `ok` while arr serves, 503 `stopping` once it has begun to stop;
 *   `GET /healthz?verbose`: the same status with one line of JSON
 *   `{"status", "apps", "instances", "registry": "ok" | "unreachable"}`.
 * - `GET /metrics`: Prometheus text format.
 */
export async function startAdminServer(
  address: AdminAddress,
  metrics: Metrics,
  health: HealthSource,
): Promise<AdminServer> {
  const server: Server = createServer((req, res) => {
    if (!admitsHost(req.headers.host, address)) {
      // 421 rather than 403: what is wrong is the name the request was sent to (this endpoint
      // does not serve that authority, RFC 9110 §15.5.20), not who sent it; 403 is left for a
      // missing or wrong credential once the endpoint takes one.
      const body = 'misdirected: Host must be localhost or an IP address, with or without a port\n';
      send(res, 421, 'text/plain; charset=utf-8', body, {}, req.method === 'HEAD');
      return;
    }
    const [path, query = ''] = (req.url ?? '/').split('?', 2);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, 'text/plain; charset=utf-8', 'only GET and HEAD\n', { allow: 'GET, HEAD' });
      return;
    }
    const head = req.method === 'HEAD';
    if (path === '/healthz') {
      const serving = health.serving();
      const status = serving ? 200 : 503;
      if (!new URLSearchParams(query).has('verbose')) {
        send(res, status, 'text/plain; charset=utf-8', serving ? 'ok\n' : 'stopping\n', {}, head);
        return;
      }
      const report = {
        status: serving ? 'ok' : 'stopping',
        apps: health.apps(),
        instances: health.instances(),
        registry: health.registryReachable() ? 'ok' : 'unreachable',
      };
      send(res, status, 'application/json', `${JSON.stringify(report)}\n`, {}, head);
      return;
    }
    if (path === '/metrics') {
      metrics.registry.metrics().then(
        (text) => send(res, 200, metrics.registry.contentType, text, {}, head),
        () => send(res, 500, 'text/plain; charset=utf-8', 'metrics are unavailable\n', {}, head),
      );
      return;
    }
    send(res, 404, 'text/plain; charset=utf-8', 'not found: try /healthz or /metrics\n', {}, head);
  });
  await new Promise<void>((resolve, reject) => {
    server.once('error', reject);
    server.listen({ host: address.host, port: address.port }, () => {
      server.off('error', reject);
      resolve();
    });
  });
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        server.close(() => resolve());
        // A scraper's keep-alive connection would hold the close up.
        server.closeAllConnections();
      }),
  };
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  headers: Record<string, string> = {},
  head = false,
): void {
  res.writeHead(status, {
    'content-type': type,
    'content-length': Buffer.byteLength(body),
    'cache-control': 'no-store',
    ...headers,
  });
  res.end(head ? undefined : body);
}
