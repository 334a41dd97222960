// What one tenant's instance can see of arr. An instance runs as arr's user unless its app
// names a `user`: as root, it could read /proc/<arr's pid>/environ, with every ARR_* setting
// (a MongoDB URL with its password) that arr removes from the instance's own environment. A
// `--mongo` URL on the command line is in /proc/<pid>/cmdline for every local user to read:
// --mongo-file keeps it out. Security review #19.
import assert from 'node:assert/strict';
import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { logLines, scriptApp } from '../support/activation.js';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { ARR_CLI, repoRoot, run, stopAll } from '../support/proc.js';

/** A secret in arr's environment (as ARR_MONGO can be): instances must not learn it. */
const SECRET = { name: 'ARR_TEST_SECRET', value: 'not-for-instances' };

/**
 * Serves on PORT, answering each request with who the instance runs as and what reading arr's
 * environment (its parent's /proc/PID/environ) gave: "secret" when it held SECRET, else the
 * error code.
 */
const PROBE = `
const fs = require('node:fs');
require('node:http').createServer((req, res) => {
  let environ;
  try {
    environ = fs.readFileSync('/proc/' + process.ppid + '/environ', 'latin1').includes(${JSON.stringify(`${SECRET.name}=${SECRET.value}`)}) ? 'secret' : 'no secret';
  } catch (e) {
    environ = e.code;
  }
  res.end(JSON.stringify({ uid: process.getuid(), gid: process.getgid(), home: process.env.HOME, environ }));
}).listen(process.env.PORT);
`;

interface ProbeAnswer {
  uid: number;
  gid: number;
  home: string;
  environ: string;
}

/** uid, gid and home of a user in /etc/passwd, as the test machine has them. */
function passwdEntry(name: string): { uid: number; gid: number; home: string } {
  const line = readFileSync('/etc/passwd', 'utf8')
    .split('\n')
    .find((l) => l.startsWith(`${name}:`));
  if (!line) throw new Error(`no user ${name} in /etc/passwd`);
  const f = line.split(':');
  return { uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
}

const NOT_ROOT =
  process.getuid?.() === 0 ? undefined : 'arr must run as root to start instances as another user';
if (NOT_ROOT) console.warn(`\n!!! SKIPPING the "user" tests: ${NOT_ROOT}\n`);

describe('an app with "user": its instance runs as that user', { skip: NOT_ROOT }, () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(
      [
        { ...scriptApp('confined', 'confined.localhost', PROBE), user: 'nobody' },
        { ...scriptApp('grouped', 'grouped.localhost', PROBE), user: 'nobody', group: 'daemon' },
        scriptApp('open', 'open.localhost', PROBE),
        {
          ...helloApp('ghost', [{ host: 'ghost.localhost', ssl: 'allowed' }]),
          name: 'ghost',
          user: 'no-such-user',
        },
      ],
      { env: { [SECRET.name]: SECRET.value } },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  const probe = async (host: string): Promise<ProbeAnswer> => {
    const r = await fetchVia(arr.port, host, false);
    assert.equal(r.status, 200, r.text);
    return JSON.parse(r.text) as ProbeAnswer;
  };

  it('without "user", an instance runs as arr (root) and reads arr\'s secrets: the attack', async () => {
    const open = await probe('open.localhost');
    assert.equal(open.uid, 0);
    assert.equal(open.environ, 'secret');
  });

  it('with "user": nobody, it runs as nobody in its primary group, and cannot read them', async () => {
    const nobody = passwdEntry('nobody');
    const confined = await probe('confined.localhost');
    assert.deepEqual(confined, { uid: nobody.uid, gid: nobody.gid, home: nobody.home, environ: 'EACCES' });
  });

  it('"group" sets the group', async () => {
    const daemon = readFileSync('/etc/group', 'utf8')
      .split('\n')
      .find((l) => l.startsWith('daemon:'));
    const grouped = await probe('grouped.localhost');
    assert.equal(grouped.gid, Number(daemon?.split(':')[2]));
    assert.equal(grouped.uid, passwdEntry('nobody').uid);
  });

  it('an unknown user: 502, with the field and the reason in the log, and arr goes on', async () => {
    const r = await fetchVia(arr.port, 'ghost.localhost', false);
    assert.equal(r.status, 502);
    assert.equal(r.text, '502 Bad Gateway: the application could not be started\n');
    // The log line can reach the test's pipe after the answer reached the client.
    await arr.proc.waitFor(/activation of ghost failed/);
    const reason = logLines(arr.proc.output()).find((l) => l.msg.startsWith('activation of ghost failed'));
    assert.equal(
      reason?.msg,
      'activation of ghost failed: ghost: user: unknown user "no-such-user" (not in /etc/passwd)',
    );
    await probe('confined.localhost');
  });

  it('arr validate reports the unknown user by _id and field', async () => {
    const r = await run(process.execPath, [ARR_CLI, 'validate', arr.appsFile!], { env: cliEnv() });
    assert.equal(r.code, 1, r.output);
    assert.match(
      r.output,
      /^line 4, app [0-9a-f]{24}: user: unknown user "no-such-user" \(not in \/etc\/passwd\)$/m,
    );
    assert.match(r.output, /^3 apps valid, 1 problem$/m);
  });
});

describe('--mongo-file: the MongoDB URL read from a file', { skip: mongoUnavailable() }, () => {
  let server: MongoServer;
  let arr: ArrUnderTest | undefined;
  const dir = mkdtempSync(join(tmpdir(), 'arr-mongo-file-'));
  const urlFile = join(dir, 'mongo-url');
  before(async () => {
    server = await startMongo('mongofile');
    writeFileSync(urlFile, `  ${server.url}\n`);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    await server?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  const cli = (args: string[], env: Record<string, string> = {}) =>
    run(process.execPath, [ARR_CLI, ...args], { env: cliEnv(env), timeoutMs: 30_000 });

  it('serves arr import, arr apps and arr itself, and the URL is in no command line', async () => {
    const apps = join(dir, 'apps.json');
    writeFileSync(
      apps,
      `{"_id": "mf", "process": {"executable": ${JSON.stringify(process.execPath)}, "args": [${JSON.stringify(join(repoRoot, 'samples/hello/server.js'))}, "mf"]}, "hosts": [{"host": "mf.localhost", "ssl": "allowed"}]}\n`,
    );
    const imported = await cli(['import', apps, '--mongo-file', urlFile]);
    assert.equal(imported.code, 0, imported.output);
    assert.match(imported.output, /imported: 1 inserted/);
    const listed = await cli(['apps'], { ARR_MONGO_FILE: urlFile });
    assert.equal(listed.code, 0, listed.output);
    assert.match(listed.output, /^mf\.localhost\s+mf\s+1\s+mf\.localhost/m);

    // With a MongoDB URL, --apps is ignored: it is only there because the harness always gives one.
    arr = await startArrWith([], { file: apps, extraArgs: ['--mongo-file', urlFile] });
    const r = await fetchVia(arr.port, 'mf.localhost', false);
    assert.match(r.text, /^hello from mf/);
    const cmdline = readFileSync(`/proc/${arr.proc.pid}/cmdline`, 'latin1');
    assert.ok(!cmdline.includes(server.url) && !cmdline.includes('mongodb://'), cmdline);
  });

  it('a missing or empty file, or --mongo beside it: exit 2 naming the option', async () => {
    const missing = join(dir, 'missing');
    for (const args of [['apps'], ['import', join(dir, 'apps.json')], []]) {
      const r = await cli([...args, '--mongo-file', missing, '-p', '0', '-s', '0']);
      assert.equal(r.code, 2, r.output);
      assert.equal(r.output, `arr: --mongo-file: cannot read "${missing}" (ENOENT)\n`);
    }
    const empty = join(dir, 'empty');
    writeFileSync(empty, ' \n');
    const e = await cli(['--mongo-file', empty, '-p', '0', '-s', '0']);
    assert.equal(e.code, 2, e.output);
    assert.equal(e.output, `arr: --mongo-file: "${empty}" is empty\n`);
    const both = await cli(['--mongo-file', urlFile, '--mongo', server.url, '-p', '0', '-s', '0']);
    assert.equal(both.code, 2, both.output);
    assert.match(both.output, /^arr: --mongo and --mongo-file go alone: give one of them$/m);
  });
});
