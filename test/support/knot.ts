// Knot DNS (Debian's knotd), an authoritative server for the RFC 2136 tests: one zone that a
// TSIG key may update, on a loopback address of its own at port 53 (the propagation check asks
// a zone's name servers on port 53, as it does in production). Needs root (CI runs as root).

import { spawnSync } from 'node:child_process';
import { randomBytes, randomInt } from 'node:crypto';
import { mkdirSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { until } from './poll.js';
import { type Running, start } from './proc.js';

const KNOTD = '/usr/sbin/knotd';

/** Why the Knot suites cannot run here, or undefined. */
export function knotUnavailable(): string | undefined {
  if (spawnSync('sh', ['-c', `test -x ${KNOTD}`]).status !== 0)
    return 'knotd is not installed (bash scripts/install-knot.sh)';
  if (process.getuid?.() !== 0) return 'Knot listens on port 53: the suite runs as root';
  return undefined;
}

export interface Knot {
  /** The loopback address it listens on (port 53), also its zone's name server. */
  address: string;
  zone: string;
  /** `ARR_ACME_TSIG` for its update key. */
  tsig: string;
  proc: Running;
  stop(): Promise<void>;
}

/** Starts knotd serving `zone` (an NS record and its glue pointing at itself), updatable with a TSIG key. */
export async function startKnot(zone: string): Promise<Knot> {
  const dir = mkdtempSync(join(tmpdir(), 'arr-knot-'));
  mkdirSync(join(dir, 'db'));
  // An address of its own in 127.0.0.0/8, so that port 53 is free there.
  const address = `127.53.${randomInt(1, 255)}.${randomInt(1, 255)}`;
  const secret = randomBytes(32).toString('base64');
  writeFileSync(
    join(dir, `${zone}.zone`),
    [
      `$ORIGIN ${zone}.`,
      '$TTL 60',
      `@ SOA ns.${zone}. hostmaster.${zone}. 1 60 60 3600 60`,
      `@ NS ns.${zone}.`,
      `ns A ${address}`,
      '',
    ].join('\n'),
  );
  writeFileSync(
    join(dir, 'knot.conf'),
    [
      'server:',
      `  rundir: "${dir}"`,
      `  listen: ${address}@53`,
      'database:',
      `  storage: "${dir}/db"`,
      'log:',
      '  - target: stdout',
      '    any: info',
      'key:',
      '  - id: arr-key',
      '    algorithm: hmac-sha256',
      `    secret: ${secret}`,
      'acl:',
      '  - id: arr-update',
      '    key: arr-key',
      '    action: update',
      'zone:',
      `  - domain: ${zone}`,
      `    storage: "${dir}"`,
      `    file: "${zone}.zone"`,
      '    acl: arr-update',
      '    zonefile-sync: -1',
      '',
    ].join('\n'),
  );
  const proc = start(KNOTD, ['-c', join(dir, 'knot.conf')]);
  await until('knotd to load its zone', () => /loaded, serial/.test(proc.output()) || undefined, {
    timeoutMs: 10_000,
    intervalMs: 50,
  }).catch((err: Error) => {
    throw new Error(`${err.message}\n${proc.output()}`);
  });
  return {
    address,
    zone,
    tsig: `arr-key:hmac-sha256:${secret}`,
    proc,
    async stop() {
      await proc.stop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
