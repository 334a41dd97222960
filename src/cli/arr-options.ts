import type { InferredOptionTypes, Options } from 'yargs';
import { LETS_ENCRYPT } from '../acme/directories.js';
import { LOG_LEVELS } from '../util/log.js';
import { DEFAULT_CERT, DEFAULT_KEY } from '../util/paths.js';

/**
 * Every option of `arr`, with its aliases, given to every command (`arr certs` reads --cert and
 * --acme-dir, `arr init` --apps and --port); also what unknown flags are checked against.
 */
export const ARR_OPTIONS = {
  mongo: {
    alias: 'm',
    type: 'string',
    describe: 'MongoDB connection string (the farm); without it the file registry is used',
  },
  'mongo-file': {
    type: 'string',
    describe:
      'read the MongoDB connection string from this file (trimmed), so that it shows in no command line; instead of --mongo',
  },
  apps: {
    alias: 'a',
    type: 'string',
    default: 'apps.json',
    describe: 'the file registry (ignored with --mongo)',
  },
  range: {
    alias: 'r',
    type: 'string',
    default: '8000-9000',
    describe: 'TCP ports arr may give to application instances, A-B',
  },
  port: { alias: 'p', type: 'number', default: 31415, describe: 'plain HTTP/WS listen port' },
  sslport: {
    alias: 's',
    type: 'number',
    default: 31416,
    describe: 'HTTPS/WSS listen port (must differ from --port)',
  },
  cert: {
    alias: 'c',
    type: 'string',
    default: DEFAULT_CERT,
    defaultDescription: 'the sample wildcard certificate',
    describe: 'default (non-SNI) certificate, PEM',
  },
  key: {
    alias: 'k',
    type: 'string',
    default: DEFAULT_KEY,
    defaultDescription: 'its key',
    describe: 'private key of --cert, PEM',
  },
  advertise: {
    type: 'string',
    defaultDescription: 'first non-internal IPv4',
    describe: 'address other arr nodes use to reach instances started here',
  },
  bind: {
    type: 'string',
    defaultDescription: 'all interfaces',
    describe: 'listen address for --port and --sslport',
  },
  'start-timeout': {
    type: 'number',
    default: 15,
    describe: 'seconds an instance has to accept connections after it is started',
  },
  poll: {
    type: 'number',
    default: 2,
    describe: "with --mongo: seconds between reads of the registry (app changes, other nodes' instances)",
  },
  heartbeat: {
    type: 'number',
    default: 2,
    describe: 'with --mongo: seconds between liveness beats; a node silent for 5 beats is taken for dead',
  },
  'header-timeout': {
    type: 'number',
    default: 20,
    describe: 'seconds a client has to send a complete request head (and TLS handshake); then it is closed',
  },
  'keepalive-timeout': {
    type: 'number',
    default: 65,
    describe: "seconds a client's idle keep-alive connection is kept open",
  },
  'proxy-timeout': {
    type: 'number',
    default: 60,
    describe: 'seconds an instance has to begin its answer to a request; then 504 (WebSockets are exempt)',
  },
  'body-timeout': {
    type: 'number',
    default: 60,
    describe: 'seconds a request body may stall (no byte arriving); then 408 and the connection is closed',
  },
  'instance-connections': {
    type: 'number',
    default: 256,
    describe: 'connections arr opens to one instance at most; further requests wait in arr for one',
  },
  'idle-timeout': {
    type: 'number',
    default: 0,
    describe:
      'seconds an instance may serve nothing (no request, no WebSocket) before it is stopped; 0: never',
  },
  drain: {
    type: 'number',
    default: 30,
    describe:
      'seconds an instance replaced by a deploy keeps its WebSockets (and requests in flight) before it is stopped',
  },
  workers: {
    type: 'string',
    default: 'auto',
    describe:
      'worker processes that carry the traffic beside a primary that owns the instances: a number, auto (one per core), or 0 (one process does both)',
  },
  'state-dir': {
    type: 'string',
    defaultDescription: '$XDG_STATE_HOME/arr or ~/.local/state/arr',
    describe:
      'where arr lists the instances it runs, so that none outlives it (and its next run stops leftovers)',
  },
  admin: {
    type: 'string',
    defaultDescription: 'off',
    describe:
      'serve the dashboard (/), its JSON API (/api), /healthz and /metrics (Prometheus) on [ADDR:]PORT, 127.0.0.1 unless ADDR is given; an ADDR other than loopback needs --admin-token',
  },
  'admin-token': {
    type: 'string',
    describe:
      'require "Authorization: Bearer TOKEN" on every --admin path but /healthz (at least 16 characters; ARR_ADMIN_TOKEN keeps it out of the command line)',
  },
  'access-log': {
    type: 'boolean',
    default: false,
    describe: 'log one info line per request and WebSocket: method, host, path, status, bytes, ms, app',
  },
  'trust-proxy-protocol': {
    type: 'boolean',
    default: false,
    describe:
      'expect a PROXY protocol v1 header (nlb "proxyProtocol": true) on every connection and take its source for the client address; arr must then be reachable only through the balancer',
  },
  'acme-email': {
    type: 'string',
    defaultDescription: 'off',
    describe:
      'turn on automatic HTTPS: certificates from an ACME CA for every qualifying host, this address as the account contact',
  },
  'acme-directory': {
    type: 'string',
    default: LETS_ENCRYPT,
    defaultDescription: "Let's Encrypt production",
    describe: "with --acme-email: the CA's ACME directory URL",
  },
  'acme-dir': {
    type: 'string',
    defaultDescription: '$XDG_DATA_HOME/arr/acme or ~/.local/share/arr/acme',
    describe: 'with --acme-email and without --mongo: where the account, certificates and keys are kept',
  },
  'acme-challenges': {
    type: 'string',
    default: 'http-01,tls-alpn-01',
    describe:
      'with --acme-email: the challenge types used for hosts, in order of preference: http-01, tls-alpn-01, dns-01 (needs --acme-dns); wildcard hosts use dns-01 alone',
  },
  'acme-dns': {
    type: 'string',
    defaultDescription: 'off',
    describe:
      'with --acme-email: DNS-01 (needed by wildcard hosts) through exec:PATH (run as PATH present|cleanup FQDN VALUE) or rfc2136:HOST:PORT (dynamic updates signed with the TSIG key of ARR_ACME_TSIG, name:algorithm:base64secret)',
  },
  'acme-dns-wait': {
    type: 'number',
    default: 120,
    describe:
      "with --acme-dns: seconds to wait at most for a challenge's TXT record to be served by every authoritative server of its zone before the CA is asked; 0 does not check",
  },
  http2: {
    type: 'boolean',
    default: true,
    describe:
      'offer HTTP/2 on the TLS port (ALPN h2, then http/1.1); --no-http2 (ARR_HTTP2=false) offers HTTP/1.1 only',
  },
  h2c: {
    type: 'boolean',
    default: true,
    describe:
      'take HTTP/2 with prior knowledge (h2c: the connection preface) on the plain port; --no-h2c (ARR_H2C=false) answers it 400',
  },
  'log-level': {
    type: 'string',
    choices: LOG_LEVELS,
    default: 'info',
    describe: 'least severe log level written',
  },
  'app-stderr-level': {
    type: 'string',
    choices: LOG_LEVELS,
    default: 'info',
    describe: "the level of instances' stderr lines in arr's log (stdout's is info); silent drops them",
  },
} as const satisfies Record<string, Options>;

/** The options every command of `arr` is given, as yargs types them. */
export type ArrArgs = InferredOptionTypes<typeof ARR_OPTIONS>;

/** Options of the admin commands only (checked for unknown flags together with arr's own). */
export const APPS_OPTIONS = {
  json: { type: 'boolean', describe: 'with `arr apps`: print JSON instead of a table' },
  wait: {
    type: 'boolean',
    describe: 'with `arr restart`: wait until the new instances serve (or fail), and report it',
  },
} as const satisfies Record<string, Options>;

/** What the admin commands (apps, certs, restart) are given. */
export type AppsArgs = ArrArgs & InferredOptionTypes<typeof APPS_OPTIONS>;

/** Every flag any command of `arr` knows: what a usage message may name. */
export const ALL_OPTIONS = { ...ARR_OPTIONS, ...APPS_OPTIONS };
