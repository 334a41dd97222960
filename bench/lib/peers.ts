import { spawnSync } from 'node:child_process';
import { existsSync, mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { type Running, runOk, start } from '../../harness/proc.js';
import { H2LOAD } from './h2load.js';
import { waitForListen, waitForPort } from './net.js';
import { WRK } from './wrk.js';

export const NGINX = '/usr/sbin/nginx';
export const HAPROXY = '/usr/sbin/haproxy';
const PACKAGES = ['nginx-light', 'haproxy', 'wrk', 'nghttp2-client'];
/** The nginx whose build has `grpc_pass` everywhere Debian ships one (nginx-light had none before 12). */
const GRPC_NGINX = 'nginx-full';

/**
 * Whether this nginx has ngx_http_grpc_module (`grpc_pass`): built in unless configured
 * `--without-http_grpc_module`, as Debian's nginx-light was before Debian 12 (whose one nginx
 * binary has it).
 */
export function nginxHasGrpc(): boolean {
  return existsSync(NGINX) && !versionOf(NGINX, ['-V'], true).includes('--without-http_grpc_module');
}

/**
 * Installs Debian's nginx, haproxy, wrk and h2load with apt-get when one of them is missing (as
 * root), and nginx-full when the nginx there has no `grpc_pass`.
 */
export async function ensurePeers(log: (line: string) => void): Promise<void> {
  const missing = [NGINX, HAPROXY, WRK, H2LOAD].filter((p) => !existsSync(p));
  if (!nginxHasGrpc()) missing.push(`${NGINX} with grpc_pass`);
  if (missing.length === 0) return;
  if (process.getuid?.() !== 0)
    throw new Error(
      `missing ${missing.join(', ')}; install them as root: apt-get update && apt-get install -y ${PACKAGES.join(' ')}`,
    );
  log(`installing ${PACKAGES.join(' ')} with apt-get (missing: ${missing.join(', ')})`);
  const env = { DEBIAN_FRONTEND: 'noninteractive' };
  await runOk('apt-get', ['update'], { env, timeoutMs: 600_000 });
  const packages = nginxHasGrpc() || !existsSync(NGINX) ? PACKAGES : [...PACKAGES, GRPC_NGINX];
  await runOk('apt-get', ['install', '-y', '--no-install-recommends', ...packages], {
    env,
    timeoutMs: 600_000,
  });
  if (!nginxHasGrpc())
    await runOk('apt-get', ['install', '-y', '--no-install-recommends', GRPC_NGINX], { env });
  const still = [NGINX, HAPROXY, WRK, H2LOAD].filter((p) => !existsSync(p));
  if (still.length > 0) throw new Error(`apt-get did not provide ${still.join(', ')}`);
}

/** The first line a tool prints about its version (`all`: everything it prints). */
export function versionOf(cmd: string, args: string[], all = false): string {
  const r = spawnSync(cmd, args, { encoding: 'utf8' });
  const text = `${r.stdout ?? ''}\n${r.stderr ?? ''}`.trim();
  return all ? text : (text.split('\n')[0]?.trim() ?? 'unknown');
}

export interface Nginx {
  proc: Running;
  port: number;
  sslport: number;
  /** HTTPS with HTTP/2 (ALPN h2, http/1.1), the same server otherwise. */
  h2port: number;
  config: string;
}

/**
 * Debian's nginx as a reverse proxy in front of one backend: 1 worker (or `workers`), kept-alive upstream
 * connections, no access log, and the same X-Forwarded-* headers arr adds, so that both do
 * the same work; /ws proxies WebSockets, and TLS sessions resume (tickets and a cache). Runs in
 * the foreground as a child of the harness.
 */
export async function startNginx(
  dir: string,
  o: {
    port: number;
    sslport: number;
    h2port: number;
    backend: number;
    cert: string;
    key: string;
    /** worker_processes; default 1. */
    workers?: number;
  },
): Promise<Nginx> {
  const d = join(dir, 'nginx');
  const config = `${nginxHead(d, o.workers ?? 1)}
  proxy_temp_path ${d}/proxy;
  upstream app {
    server 127.0.0.1:${o.backend};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${o.port};
    listen 127.0.0.1:${o.sslport} ssl;
    # HTTP/2 on a port of its own, so that the HTTP/1.1 HTTPS points stay as they were. (nginx
    # 1.25.1 and later write this as "http2 on;"; Debian 12 has 1.22.)
    listen 127.0.0.1:${o.h2port} ssl http2;
    ssl_certificate ${o.cert};
    ssl_certificate_key ${o.key};
    # Resumption, for the resumed-handshake rows (tickets are on by default; said so here).
    ssl_session_tickets on;
    ssl_session_cache shared:SSL:10m;
    # The hello sample's WebSocket echo, proxied as nginx's documentation says (Upgrade passed on).
    location /ws {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Upgrade $http_upgrade;
      proxy_set_header Connection "upgrade";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
      proxy_read_timeout 1h;
    }
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
      proxy_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
      proxy_set_header X-Forwarded-Proto $scheme;
      proxy_set_header X-Forwarded-Host $host;
      proxy_set_header X-Forwarded-Port $server_port;
    }
  }
}
`;
  const proc = await runNginx(d, config, o.port);
  await waitForPort(o.sslport);
  await waitForPort(o.h2port);
  return { proc, port: o.port, sslport: o.sslport, h2port: o.h2port, config };
}

/**
 * Debian's nginx in front of one gRPC (h2c) backend with `grpc_pass`, taking HTTP/2 by prior
 * knowledge on `port`: 1 worker, kept-alive upstream connections, no access log, X-Forwarded-For
 * as arr sends it.
 */
export async function startGrpcNginx(
  dir: string,
  o: { port: number; backend: number },
): Promise<{ proc: Running; config: string }> {
  const d = join(dir, 'nginx-grpc');
  const config = `${nginxHead(d)}
  http2_max_requests 1000000;
  upstream grpcapp {
    server 127.0.0.1:${o.backend};
    keepalive 64;
    keepalive_requests 1000000;
  }
  server {
    listen 127.0.0.1:${o.port} http2;
    location / {
      grpc_pass grpc://grpcapp;
      grpc_set_header X-Forwarded-For $proxy_add_x_forwarded_for;
    }
  }
}
`;
  return { proc: await runNginx(d, config, o.port), config };
}

/** The start of a config in `d` (one worker unless told), into its `http` block (no access log, kept-alive clients). */
function nginxHead(d: string, workers = 1): string {
  return `# generated by bench/lib/peers.ts
worker_processes ${workers};
${process.getuid?.() === 0 ? 'user root;\n' : ''}pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events { worker_connections 16384; }
http {
  access_log off;
  client_body_temp_path ${d}/body;
  keepalive_requests 1000000;`;
}

/** nginx with `config` in the foreground (a child of the harness), once it listens on `port`. */
async function runNginx(d: string, config: string, port: number): Promise<Running> {
  mkdirSync(d, { recursive: true });
  const file = join(d, 'nginx.conf');
  writeFileSync(file, config);
  const proc = start(NGINX, ['-c', file, '-p', d, '-e', `${d}/error.log`, '-g', 'daemon off;']);
  await waitForListen(proc, port);
  return proc;
}

export interface Haproxy {
  proc: Running;
  port: number;
  config: string;
}

/** Debian's HAProxy in tcp mode in front of one backend, one thread (nlb is one thread too). */
export async function startHaproxy(dir: string, o: { port: number; backend: number }): Promise<Haproxy> {
  const config = `# generated by bench/lib/peers.ts
global
  nbthread 1
  maxconn 4000

defaults
  mode tcp
  timeout connect 5s
  timeout client 60s
  timeout server 60s

frontend bench
  bind 127.0.0.1:${o.port}
  default_backend app

backend app
  server s1 127.0.0.1:${o.backend}
`;
  const file = join(dir, 'haproxy.cfg');
  writeFileSync(file, config);
  const proc = start(HAPROXY, ['-db', '-f', file]);
  await waitForListen(proc, o.port);
  return { proc, port: o.port, config };
}
