// Pebble (Let's Encrypt's ACME test server) and pebble-challtestsrv (its DNS), for the ACME tests:
// Pebble's own API certificate made here with openssl, challtestsrv answering every name with
// the loopback address of the node under test, Pebble validating on arr's ports. Pebble 2.10 or
// newer (it has ARI), built by scripts/install-pebble.sh and cached in ~/.cache/arr.

import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { get, request } from 'node:https';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { connect, type TLSSocket } from 'node:tls';
import { until } from './poll.js';
import { freePorts } from './ports.js';
import { type Running, start } from './proc.js';

export const PEBBLE_VERSION = 'v2.10.3';

/** Where install-pebble.sh keeps the two binaries. */
function pebbleDir(): string {
  const cache = process.env.ARR_PEBBLE_CACHE ?? join(homedir(), '.cache', 'arr');
  return join(cache, `pebble-${PEBBLE_VERSION}`);
}

const PEBBLE = () => join(pebbleDir(), 'pebble');
const CHALLTESTSRV = () => join(pebbleDir(), 'pebble-challtestsrv');

/** Why the ACME tests cannot run here (no pebble), or undefined. Under CI=true that is a failure. */
export function pebbleUnavailable(): string | undefined {
  for (const bin of [PEBBLE(), CHALLTESTSRV()])
    if (!existsSync(bin)) return `${bin} is not there (bash scripts/install-pebble.sh)`;
  if (spawnSync('sh', ['-c', 'command -v openssl']).status !== 0) return 'openssl is not installed';
  return undefined;
}

export interface Pebble {
  /** The ACME directory URL. */
  directory: string;
  /** Pebble's API CA (PEM file), for NODE_EXTRA_CA_CERTS of arr. */
  apiCaFile: string;
  /** The root of the certificates Pebble issues (PEM file), for curl --cacert. */
  rootFile: string;
  rootPem: string;
  proc: Running;
  dns: Running;
  /** challtestsrv's management API (POST /set-txt, /clear-txt), for a DNS-01 hook. */
  dnsManagement: string;
  /** Sets the ARI answer for a certificate (Pebble's management API, POST /set-renewal-info/). */
  setRenewalInfo(certPem: string, info: unknown): Promise<void>;
  /** Stops Pebble only (the CA down); `restart` brings it back with the same settings and root. */
  stopCa(): Promise<void>;
  restart(): Promise<void>;
  stop(): Promise<void>;
}

export interface PebbleOptions {
  /** The ports Pebble validates on (arr's plain and TLS ports, or nlb's in front). */
  httpPort: number;
  tlsPort: number;
  /** What challtestsrv answers for every name (default 127.0.0.1). */
  address?: string;
  /** Issued certificates' validity, seconds (Pebble's default is 5 years). */
  validitySeconds?: number;
  /** Do not wait for the root (the CA is started later with restart()). */
  noStart?: boolean;
  /** The DNS server Pebble resolves through (host:port), instead of challtestsrv (Knot, say). */
  dnsServer?: string;
}

function fetchText(url: string, ca: string): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    // Pebble 2.10 refuses requests without a User-Agent, as RFC 8555 §6.1 lets a server.
    get(url, { ca: readFileSync(ca), agent: false, headers: { 'user-agent': 'arr-tests' } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    }).on('error', reject);
  });
}

function postJson(url: string, body: unknown, ca: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = request(
      url,
      { method: 'POST', ca: readFileSync(ca), agent: false, headers: { 'user-agent': 'arr-tests' } },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          text += d;
        });
        res.on('end', () =>
          res.statusCode === 200 ? resolve() : reject(new Error(`${res.statusCode}: ${text}`)),
        );
      },
    );
    req.on('error', reject);
    req.end(JSON.stringify(body));
  });
}

export async function startPebble(opts: PebbleOptions): Promise<Pebble> {
  const dir = mkdtempSync(join(tmpdir(), 'arr-pebble-'));
  const file = (n: string) => join(dir, n);
  const ssl = (...args: string[]) => execFileSync('openssl', args, { stdio: 'pipe' });
  // Pebble's API: a CA of its own and a leaf for 127.0.0.1 / localhost.
  ssl(
    'req',
    '-x509',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-days',
    '2',
    '-subj',
    '/CN=pebble api test CA',
    '-keyout',
    file('ca-key.pem'),
    '-out',
    file('ca.pem'),
  );
  ssl(
    'req',
    '-newkey',
    'ec',
    '-pkeyopt',
    'ec_paramgen_curve:P-256',
    '-nodes',
    '-subj',
    '/CN=localhost',
    '-keyout',
    file('key.pem'),
    '-out',
    file('api.csr'),
  );
  writeFileSync(file('ext.cnf'), 'subjectAltName=IP:127.0.0.1,DNS:localhost\n');
  ssl(
    'x509',
    '-req',
    '-in',
    file('api.csr'),
    '-CA',
    file('ca.pem'),
    '-CAkey',
    file('ca-key.pem'),
    '-CAcreateserial',
    '-days',
    '2',
    '-extfile',
    file('ext.cnf'),
    '-out',
    file('cert.pem'),
  );
  const [apiPort, mgmtPort, dnsPort, dnsMgmtPort] = await freePorts(4);
  writeFileSync(
    file('pebble.json'),
    JSON.stringify({
      pebble: {
        listenAddress: `127.0.0.1:${apiPort}`,
        managementListenAddress: `127.0.0.1:${mgmtPort}`,
        certificate: file('cert.pem'),
        privateKey: file('key.pem'),
        httpPort: opts.httpPort,
        tlsPort: opts.tlsPort,
        ocspResponderURL: '',
        externalAccountBindingRequired: false,
        ...(opts.validitySeconds
          ? { profiles: { default: { description: 'short', validityPeriod: opts.validitySeconds } } }
          : {}),
      },
    }),
  );
  const dns = start(CHALLTESTSRV(), [
    '-defaultIPv4',
    opts.address ?? '127.0.0.1',
    '-defaultIPv6',
    '',
    '-dnsserver',
    `127.0.0.1:${dnsPort}`,
    '-doh',
    '',
    '-http01',
    '',
    '-https01',
    '',
    '-tlsalpn01',
    '',
    '-management',
    `127.0.0.1:${dnsMgmtPort}`,
  ]);
  await dns.waitFor(/Starting management server/, 10_000).catch((err: Error) => {
    throw new Error(`pebble-challtestsrv did not start: ${err.message}\n${dns.output().slice(-2000)}`);
  });
  const apiCa = file('ca.pem');
  const directory = `https://127.0.0.1:${apiPort}/dir`;
  // Quick validations; the random nonce rejection stays on (the client must cope with it).
  const env = { PEBBLE_VA_NOSLEEP: '1' };
  const resolver = opts.dnsServer ?? `127.0.0.1:${dnsPort}`;
  const run = () => start(PEBBLE(), ['-config', file('pebble.json'), '-dnsserver', resolver], { env });
  let proc = run();
  const ready = async () => {
    await until('pebble to answer', async () => (await fetchText(directory, apiCa)).status === 200, {
      timeoutMs: 15_000,
      intervalMs: 100,
    }).catch((err: Error) => {
      throw new Error(`${err.message}\n${proc.output().slice(-2000)}`);
    });
  };
  let rootPem = '';
  if (!opts.noStart) {
    await ready();
    rootPem = (await fetchText(`https://127.0.0.1:${mgmtPort}/roots/0`, apiCa)).text;
  } else {
    await proc.stop();
  }
  const self: Pebble = {
    directory,
    apiCaFile: apiCa,
    rootFile: file('root.pem'),
    rootPem,
    get proc() {
      return proc;
    },
    dns,
    dnsManagement: `http://127.0.0.1:${dnsMgmtPort}`,
    setRenewalInfo: (certPem, info) =>
      postJson(
        `https://127.0.0.1:${mgmtPort}/set-renewal-info/`,
        { certificate: certPem, ariResponse: JSON.stringify(info) },
        apiCa,
      ),
    async stopCa() {
      await proc.stop();
    },
    async restart() {
      proc = run();
      await ready();
      self.rootPem = (await fetchText(`https://127.0.0.1:${mgmtPort}/roots/0`, apiCa)).text;
      writeFileSync(self.rootFile, self.rootPem);
    },
    async stop() {
      await Promise.all([proc.stop(), dns.stop()]);
      rmSync(dir, { recursive: true, force: true });
    },
  };
  if (rootPem) writeFileSync(self.rootFile, rootPem);
  return self;
}

/**
 * A TLS connection to a node for `servername`, verified against `ca`, offering `session` to
 * resume: the certificate's serial, whether the session was resumed, and the session ticket the
 * node sent (undefined if none came before the connection closed).
 */
export function handshake(address: string, port: number, servername: string, ca: string, session?: Buffer) {
  return new Promise<{ serial: string; reused: boolean; ticket: Buffer | undefined }>((resolve, reject) => {
    let ticket: Buffer | undefined;
    let serial = '';
    let reused = false;
    const s: TLSSocket = connect({ host: address, port, servername, ca, session }, () => {
      serial = s.getPeerCertificate().serialNumber;
      reused = s.isSessionReused();
      s.write(`GET / HTTP/1.1\r\nHost: ${servername}\r\nConnection: close\r\n\r\n`);
    });
    // TLS 1.3 sends its tickets after the handshake (possibly before the callback above runs).
    s.on('session', (t: Buffer) => {
      ticket = t;
    });
    s.resume();
    s.on('error', reject);
    s.on('close', () => resolve({ serial, reused, ticket }));
  });
}

/**
 * A DNS-01 hook (`--acme-dns exec:PATH`) that sets and clears TXT records through challtestsrv's
 * management API with curl, as a DNS provider's CLI would, and notes each call in `log`. For
 * names matching `failFor` it fails as a provider would (exit 3, a sentence on stderr).
 */
export function writeDnsHook(
  dir: string,
  pebble: Pebble,
  failFor = 'broken',
): { path: string; log: string; flags: string[] } {
  const path = join(dir, 'dns-hook.sh');
  const log = join(dir, 'dns-hook.log');
  writeFileSync(
    path,
    [
      '#!/bin/sh',
      'set -e',
      `case "$2" in *${failFor}*) echo "provider says: no zone for $2" >&2; exit 3;; esac`,
      `mgmt=${pebble.dnsManagement}`,
      'if [ "$1" = present ]; then',
      `  curl -sS -f -X POST -d "{\\"host\\":\\"$2\\",\\"value\\":\\"$3\\"}" "$mgmt/set-txt"`,
      'else',
      `  curl -sS -f -X POST -d "{\\"host\\":\\"$2\\"}" "$mgmt/clear-txt"`,
      'fi',
      `echo "$1 $2" >> ${log}`,
      '',
    ].join('\n'),
    { mode: 0o755 },
  );
  // challtestsrv serves what it is given at once, and answers no SOA or NS queries: no
  // propagation check.
  return { path, log, flags: ['--acme-dns', `exec:${path}`, '--acme-dns-wait', '0'] };
}

/** The flags that point arr at this Pebble: ACME on, with a contact. */
export function acmeFlags(pebble: Pebble): string[] {
  return ['--acme-email', 'ops@example.org', '--acme-directory', pebble.directory];
}

/** GET https://HOST/ through arr's TLS port with curl, verified against Pebble's root; the body. */
export function curlVerified(pebble: Pebble, port: number, host: string): string {
  return execFileSync(
    'curl',
    [
      '-sS',
      '--max-time',
      '10',
      '--cacert',
      pebble.rootFile,
      '--resolve',
      `${host}:${port}:127.0.0.1`,
      `https://${host}:${port}/`,
    ],
    { encoding: 'utf8' },
  );
}
