import type { LevelWithSilent } from 'pino';
import type { DnsProviderSpec } from './acme/dns/provider.js';
import type { TsigKey } from './acme/dns/tsig.js';

/** A bad command-line option: the message names the option; the CLI prints it and exits 2. */
export class UsageError extends Error {}

export interface PortRange {
  first: number;
  last: number;
}

/** Parses `A-B` with 1 <= A <= B <= 65535. */
export function parseRange(text: string, option = '--range'): PortRange {
  const m = /^\s*(\d{1,5})\s*-\s*(\d{1,5})\s*$/.exec(text);
  const first = m ? Number(m[1]) : Number.NaN;
  const last = m ? Number(m[2]) : Number.NaN;
  if (!m || first < 1 || last > 65535 || first > last) {
    throw new UsageError(`${option} must be A-B with 1 <= A <= B <= 65535 (got "${text}")`);
  }
  return { first, last };
}

/** Everything `arr` runs with, validated by the CLI. */
export interface ArrConfig {
  /** MongoDB URL of the farm's registry; the file registry is used without it. */
  mongo?: string;
  /** Absolute path of the file registry. */
  apps: string;
  range: PortRange;
  port: number;
  sslport: number;
  /** The default (non-SNI) certificate and its key, PEM. */
  cert: Buffer;
  key: Buffer;
  /** Their files (absolute), read again on a reload (SIGHUP). */
  certFile: string;
  keyFile: string;
  /** Listening sockets passed by the service manager (socket activation), instead of binding the ports. */
  sockets?: { http?: number; https?: number };
  /** The address recorded in `machines` for instances started here. */
  advertise: string;
  /** Listen address of both ports; all interfaces when undefined. */
  bind?: string;
  /** How long an instance has to accept connections after it is spawned. */
  startTimeoutMs: number;
  /** With MongoDB: how often the registry is read again. */
  pollMs: number;
  /** With MongoDB: how often this node beats; it is taken for dead after 5 missed beats. */
  heartbeatMs: number;
  /** A connection whose request head (or TLS handshake) is not complete this long is closed. */
  headerTimeoutMs: number;
  /** An idle keep-alive connection of a client is closed after this long. */
  keepAliveTimeoutMs: number;
  /** A request whose instance has not begun to answer this long gets 504 (WebSockets are exempt). */
  proxyTimeoutMs: number;
  /** A request body that stalls this long gets 408. */
  bodyTimeoutMs: number;
  /** At most this many connections to one instance; further requests wait in arr. */
  instanceConnections: number;
  /** `--admin`: where /healthz, /metrics and the dashboard are served; off (and no metrics kept) when undefined. */
  admin?: AdminAddress;
  /**
   * `--admin-token`: required (as `Authorization: Bearer`) by every admin path but /healthz and
   * the dashboard's files; without it the endpoint may only listen on loopback.
   */
  adminToken?: string;
  /** `--access-log`: one info line per request and WebSocket. */
  accessLog?: boolean;
  /** A local instance that served nothing for this long is stopped; 0: never. */
  idleTimeoutMs: number;
  /**
   * `--trust-proxy-protocol`: every connection to both ports begins with a PROXY v1 header (from
   * nlb or another balancer), whose source address is taken for the client's.
   */
  trustProxyProtocol?: boolean;
  /** `--drain`: how long a replaced instance keeps its WebSockets and requests in flight. */
  drainMs: number;
  /** HTTP/2 on the TLS port (ALPN h2); `--no-http2` turns it off. */
  http2: boolean;
  /** HTTP/2 with prior knowledge on the plain port (h2c); `--no-h2c` turns it off. */
  h2c: boolean;
  /** `--state-dir`: where the state files of the no-orphan guarantee are kept. */
  stateDir: string;
  /** `--acme-email`: certificates from an ACME CA (off when undefined). */
  acme?: AcmeConfig;
  /** `--app-stderr-level`: the level of instances' stderr lines in the log (default info). */
  appStderrLevel?: LevelWithSilent;
  /**
   * `--workers`: how many worker processes carry the traffic beside the primary, which owns the
   * registry and the instances (src/workers); 0: one process does both (as before workers).
   */
  workers: number;
}

/** Automatic HTTPS (src/acme). */
export interface AcmeConfig {
  /** The account's contact. */
  email: string;
  /** `--acme-directory`: the CA's directory URL. */
  directory: string;
  /** `--acme-dir`: the store without --mongo. */
  dir: string;
  /** `--acme-challenges`, in order of preference (wildcard hosts use dns-01 alone). */
  challenges: ('http-01' | 'tls-alpn-01' | 'dns-01')[];
  /** `--acme-dns` (DNS-01), with `ARR_ACME_TSIG` for rfc2136 and `--acme-dns-wait`. */
  dns?: AcmeDnsConfig;
  /** `ARR_ACME_KEY`: private keys are sealed at rest with a key derived from it. */
  secret?: string;
}

/** DNS-01: where the TXT records go, and how long their propagation is waited for (0: not checked). */
export type AcmeDnsConfig = { waitMs: number } & (
  | Extract<DnsProviderSpec, { kind: 'exec' }>
  | (Extract<DnsProviderSpec, { kind: 'rfc2136' }> & { tsig: TsigKey })
);

/** Where the admin endpoint listens. */
export interface AdminAddress {
  host: string;
  port: number;
}
