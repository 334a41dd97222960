// Instances do not inherit arr's capabilities. arr given ambient capabilities (CAP_NET_BIND_SERVICE
// by a systemd unit, so that it can bind 80 and 443) passed them to every instance: any tenant
// could bind low ports. Now instances start with no ambient or inheritable capabilities, and an
// app with `user` (arr as root) with no effective or permitted ones either, whether arr runs as
// root (instances through its cgroup wrapper) or as another user with only the capability.
// Security review #25, finding 14.
import assert from 'node:assert/strict';
import { chmodSync, chownSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { scriptApp } from '../support/activation.js';
import { type AppDoc, type ArrUnderTest, fetchVia, startArrWith, writeAppsFile } from '../support/arr.js';
import { stopAll } from '../support/proc.js';

/** Answers with its uid and capability sets, from /proc/self/status. */
const PROBE = `
const status = require('node:fs').readFileSync('/proc/self/status', 'utf8');
const field = (name) => new RegExp('^' + name + ':\\\\s*(\\\\S+)', 'm').exec(status)[1];
require('node:http')
  .createServer((req, res) =>
    res.end(JSON.stringify({ uid: process.getuid(), ...Object.fromEntries(['CapInh', 'CapPrm', 'CapEff', 'CapAmb'].map((f) => [f, field(f)])) })),
  )
  .listen(Number(process.env.PORT));
`;

const NONE = '0000000000000000';
const NET_BIND_SERVICE = '0000000000000400';
/** arr started with CAP_NET_BIND_SERVICE in its inheritable and ambient sets. */
const AMBIENT = ['/usr/bin/setpriv', '--inh-caps=+net_bind_service', '--ambient-caps=+net_bind_service'];

const skip =
  process.getuid?.() !== 0
    ? 'giving arr ambient capabilities needs root'
    : !existsSync('/usr/bin/setpriv') && process.env.CI !== 'true' && 'no /usr/bin/setpriv (util-linux)';

type Caps = { uid: number; CapInh: string; CapPrm: string; CapEff: string; CapAmb: string };

async function capsOf(arr: ArrUnderTest, host: string): Promise<Caps> {
  const r = await fetchVia(arr.port, host, false);
  assert.equal(r.status, 200, r.text);
  return JSON.parse(r.text) as Caps;
}

function statusOf(pid: number, field: string): string | undefined {
  return new RegExp(`^${field}:\\s*(\\S+)`, 'm').exec(readFileSync(`/proc/${pid}/status`, 'utf8'))?.[1];
}

describe('instances of an arr with ambient capabilities', { skip }, () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-caps-'));
  const apps: AppDoc[] = [
    scriptApp('plain', 'plain.localhost', PROBE),
    { ...scriptApp('tenant', 'tenant.localhost', PROBE), user: 'nobody' },
  ];
  before(() => chmodSync(dir, 0o755));
  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('arr as root: none inherited; with "user", none effective or permitted either', async () => {
    const arr = await startArrWith(apps, { via: AMBIENT });
    try {
      assert.equal(statusOf(arr.proc.pid, 'CapAmb'), NET_BIND_SERVICE, 'arr has the ambient capability');
      const plain = await capsOf(arr, 'plain.localhost');
      assert.equal(plain.uid, 0);
      assert.deepEqual([plain.CapInh, plain.CapAmb], [NONE, NONE]);
      const tenant = await capsOf(arr, 'tenant.localhost');
      assert.notEqual(tenant.uid, 0);
      assert.deepEqual(
        [tenant.CapInh, tenant.CapAmb, tenant.CapEff, tenant.CapPrm],
        [NONE, NONE, NONE, NONE],
      );
    } finally {
      await arr.stop();
    }
  });

  it('arr as another user with only CAP_NET_BIND_SERVICE (a systemd unit with AmbientCapabilities): none inherited', async () => {
    // Everything this arr reads or writes is nobody's to read or write.
    const file = writeAppsFile(join(dir, 'apps.json'), [apps[0]!]);
    const state = join(dir, 'state');
    mkdirSync(state);
    chownSync(state, 65534, 65534);
    const arr = await startArrWith([], {
      file,
      via: [...AMBIENT, '--reuid=65534', '--regid=65534', '--clear-groups'],
      extraArgs: ['--state-dir', state],
    });
    try {
      assert.equal(statusOf(arr.proc.pid, 'CapAmb'), NET_BIND_SERVICE, 'arr has the ambient capability');
      assert.equal(statusOf(arr.proc.pid, 'CapEff'), NET_BIND_SERVICE, 'and uses it');
      const plain = await capsOf(arr, 'plain.localhost');
      assert.equal(plain.uid, 65534);
      assert.deepEqual([plain.CapInh, plain.CapAmb, plain.CapEff, plain.CapPrm], [NONE, NONE, NONE, NONE]);
    } finally {
      await arr.stop();
    }
  });
});
