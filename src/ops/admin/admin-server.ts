import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import { type AddressInfo, isIP } from 'node:net';
import type { AdminAddress } from '../../config.js';
import type { App } from '../../registry/types.js';
import { listenOrExplain } from '../../util/listen.js';
import type { Overview, OverviewQuery, Tick } from '../dashboard/dashboard-data.js';
import { isDashboardPath, loadDashboardFiles } from '../dashboard/dashboard-files.js';
import type { Series } from '../metrics/traffic.js';
import type { OutputLine } from '../output-log.js';
import type { AdminToken } from './admin-auth.js';

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
 * is answered too, wherever the endpoint listens. With --admin-token this check is off: the
 * token guards every path that tells anything, and a rebound page cannot know it.
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
  /** With workers: how many serve now (`"workers"` in the verbose report; absent when arr runs alone). */
  workers?(): number;
}

/** What /metrics serves, and where refused admin requests are counted. */
export interface AdminMetrics {
  /** The Prometheus text. */
  text(): Promise<string>;
  readonly contentType: string;
  adminUnauthorized(reason: 'missing' | 'wrong'): void;
}

/** What the dashboard's API serves (built by Operations from the activator, registry and rings). */
export interface DashboardSource {
  overview(query: OverviewQuery): Promise<Overview>;
  tick(): Tick;
  /** The app with this id, else the one app with this name. */
  findApp(key: string): App | undefined;
  series(app: App): Series;
  output(app: App): OutputLine[];
}

export interface AdminServer {
  /** The port it listens on (the one picked, for port 0). */
  port: number;
  close(): Promise<void>;
}

/**
 * The page may run only its own script and style sheet: an app name or output line with markup
 * in it, should it ever reach the DOM as HTML, runs nothing.
 */
export const CSP =
  "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'none'";

const SECURITY_HEADERS = {
  'content-security-policy': CSP,
  'x-content-type-options': 'nosniff',
  'x-frame-options': 'DENY',
  'referrer-policy': 'no-referrer',
  'cache-control': 'no-store',
};

const TEXT = 'text/plain; charset=utf-8';
const JSON_TYPE = 'application/json; charset=utf-8';

/** Dashboards watching at once at most: each costs a timer write a second. */
const MAX_EVENT_STREAMS = 64;
/** A stream whose reader is this far behind is closed (it reconnects and starts afresh). */
const MAX_STREAM_BACKLOG = 1024 * 1024;

/**
 * The operator's endpoint, on its own listener (never on the public ports):
 * - `GET /healthz`: 200 `ok` while arr serves, 503 `stopping` once it has begun to stop;
 *   `GET /healthz?verbose`: the same status with one line of JSON
 *   `{"status", "apps", "instances", "registry": "ok" | "unreachable"}`, and `"workers": N` (serving
 *   now) with workers. Never needs the token.
 * - `GET /metrics`: Prometheus text format.
 * - `GET /`, `/dashboard.js` (and its modules, `/dashboard/*.js`), `/dashboard.css`: the dashboard
 *   (no data in them: served without the token; the page asks for it when the API refuses).
 * - `GET /api/overview`, `/api/apps/:app/series`, `/api/apps/:app/output`, `/api/events` (SSE).
 * With a token, every path but /healthz and the page's files needs `Authorization: Bearer TOKEN`.
 */
export async function startAdminServer(
  address: AdminAddress,
  metrics: AdminMetrics,
  health: HealthSource,
  dashboard: DashboardSource,
  token?: AdminToken,
): Promise<AdminServer> {
  const files = loadDashboardFiles();
  const events = new EventHub(() => dashboard.tick());
  const server: Server = createServer((req, res) => {
    const head = req.method === 'HEAD';
    if (!token && !admitsHost(req.headers.host, address)) {
      // 421 rather than 403: what is wrong is the name the request was sent to (this endpoint
      // does not serve that authority, RFC 9110 §15.5.20), not who sent it.
      const body = 'misdirected: Host must be localhost or an IP address, with or without a port\n';
      send(res, 421, TEXT, body, {}, head);
      return;
    }
    const [path = '/', query = ''] = (req.url ?? '/').split('?', 2);
    if (req.method !== 'GET' && req.method !== 'HEAD') {
      send(res, 405, TEXT, 'only GET and HEAD\n', { allow: 'GET, HEAD' });
      return;
    }
    if (path === '/healthz') {
      healthz(res, health, query, head);
      return;
    }
    const file = typeof files === 'string' ? undefined : files.get(path);
    if (file) {
      sendBody(res, 200, file.type, file.body, head);
      return;
    }
    if (token) {
      const credential = token.check(req.headers.authorization);
      if (credential !== 'ok') {
        metrics.adminUnauthorized(credential);
        send(
          res,
          401,
          TEXT,
          'unauthorized: send the --admin-token as "Authorization: Bearer TOKEN"\n',
          { 'www-authenticate': 'Bearer realm="arr admin"' },
          head,
        );
        return;
      }
    }
    route(req, res, path, query, head);
  });

  const route = (req: IncomingMessage, res: ServerResponse, path: string, query: string, head: boolean) => {
    if (path === '/metrics') {
      metrics.text().then(
        (text) => send(res, 200, metrics.contentType, text, {}, head),
        () => send(res, 500, TEXT, 'metrics are unavailable\n', {}, head),
      );
      return;
    }
    if (typeof files === 'string' && isDashboardPath(path)) {
      send(res, 500, TEXT, `${files}\n`, {}, head);
      return;
    }
    if (path === '/api/overview') {
      dashboard.overview(overviewQuery(new URLSearchParams(query))).then(
        (o) => sendJson(res, 200, o, head),
        () => sendJson(res, 500, { error: 'the overview could not be made' }, head),
      );
      return;
    }
    if (path === '/api/events') {
      if (head) {
        send(res, 200, 'text/event-stream', '', {}, true);
        return;
      }
      if (!events.subscribe(req, res))
        sendJson(res, 503, { error: `too many event streams (at most ${MAX_EVENT_STREAMS})` });
      return;
    }
    const m = /^\/api\/apps\/([^/]+)\/(series|output)$/.exec(path);
    if (m) {
      let key: string;
      try {
        key = decodeURIComponent(m[1]!);
      } catch {
        sendJson(res, 400, { error: 'the app in the path is not well encoded' }, head);
        return;
      }
      const app = dashboard.findApp(key);
      if (!app) {
        sendJson(
          res,
          404,
          { error: 'no such app (give its id, or its name when no other app has it)' },
          head,
        );
        return;
      }
      const body =
        m[2] === 'series'
          ? { app: app.id, name: app.name, step: 1, ...dashboard.series(app) }
          : { app: app.id, name: app.name, lines: dashboard.output(app) };
      sendJson(res, 200, body, head);
      return;
    }
    send(res, 404, TEXT, 'not found: try /, /healthz, /metrics or /api/overview\n', {}, head);
  };

  await listenOrExplain(server, address, '--admin');
  return {
    port: (server.address() as AddressInfo).port,
    close: () =>
      new Promise<void>((resolve) => {
        events.close();
        server.close(() => resolve());
        // A scraper's keep-alive connection, or a dashboard's event stream, would hold the close up.
        server.closeAllConnections();
      }),
  };
}

function healthz(res: ServerResponse, health: HealthSource, query: string, head: boolean): void {
  const serving = health.serving();
  const status = serving ? 200 : 503;
  if (!new URLSearchParams(query).has('verbose')) {
    send(res, status, TEXT, serving ? 'ok\n' : 'stopping\n', {}, head);
    return;
  }
  const report = {
    status: serving ? 'ok' : 'stopping',
    apps: health.apps(),
    instances: health.instances(),
    registry: health.registryReachable() ? 'ok' : 'unreachable',
    ...(health.workers ? { workers: health.workers() } : {}),
  };
  send(res, status, 'application/json', `${JSON.stringify(report)}\n`, {}, head);
}

/** `?q=&offset=&limit=&sort=`: bad numbers are ignored rather than refused (a script's typo shows everything). */
function overviewQuery(p: URLSearchParams): OverviewQuery {
  const whole = (v: string | null) => {
    const n = v === null ? Number.NaN : Number(v);
    return Number.isInteger(n) && n >= 0 ? n : undefined;
  };
  const q = p.get('q')?.slice(0, 200);
  const sort = p.get('sort');
  return {
    ...(q ? { q } : {}),
    ...(whole(p.get('offset')) !== undefined ? { offset: whole(p.get('offset')) } : {}),
    ...(whole(p.get('limit')) !== undefined ? { limit: whole(p.get('limit')) } : {}),
    ...(sort === 'busy' || sort === 'name' ? { sort } : {}),
  };
}

/**
 * The dashboards' event streams (Server-Sent Events): one tick a second, made once and written
 * to every stream; the timer runs only while someone watches.
 */
class EventHub {
  private readonly streams = new Set<ServerResponse>();
  private timer: NodeJS.Timeout | undefined;

  constructor(private readonly tick: () => Tick) {}

  subscribe(req: IncomingMessage, res: ServerResponse): boolean {
    if (this.streams.size >= MAX_EVENT_STREAMS) return false;
    res.writeHead(200, {
      ...SECURITY_HEADERS,
      'content-type': 'text/event-stream; charset=utf-8',
      connection: 'keep-alive',
    });
    res.write(`retry: 2000\n\n${frame(this.tick())}`);
    this.streams.add(res);
    const gone = () => {
      this.streams.delete(res);
      if (this.streams.size === 0) this.stop();
    };
    req.socket.once('close', gone);
    res.once('close', gone);
    this.timer ??= setInterval(() => this.send(), 1000);
    return true;
  }

  private send(): void {
    const data = frame(this.tick());
    for (const res of this.streams) {
      if (res.writableLength > MAX_STREAM_BACKLOG) res.destroy();
      else res.write(data);
    }
  }

  private stop(): void {
    clearInterval(this.timer);
    this.timer = undefined;
  }

  close(): void {
    this.stop();
    for (const res of this.streams) res.destroy();
    this.streams.clear();
  }
}

function frame(tick: Tick): string {
  return `event: tick\ndata: ${JSON.stringify(tick)}\n\n`;
}

function sendJson(res: ServerResponse, status: number, value: unknown, head = false): void {
  send(res, status, JSON_TYPE, `${JSON.stringify(value)}\n`, {}, head);
}

function send(
  res: ServerResponse,
  status: number,
  type: string,
  body: string,
  headers: Record<string, string> = {},
  head = false,
): void {
  sendBody(res, status, type, Buffer.from(body, 'utf8'), head, headers);
}

function sendBody(
  res: ServerResponse,
  status: number,
  type: string,
  body: Buffer,
  head = false,
  headers: Record<string, string> = {},
): void {
  res.writeHead(status, {
    ...SECURITY_HEADERS,
    'content-type': type,
    'content-length': body.length,
    ...headers,
  });
  res.end(head ? undefined : body);
}
