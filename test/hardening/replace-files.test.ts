// Every file arr replaces (its state files, the ACME store, an apps file `arr restart` edits)
// is written through a temporary file that a planted symlink cannot redirect: with symlinks at
// every temporary name arr used before (`<file>.<pid>.tmp`, known in advance) and at every
// name it was seen to use, their targets stay untouched and the files are still written.
import assert from 'node:assert/strict';
import {
  chmodSync,
  type FSWatcher,
  lstatSync,
  mkdtempSync,
  readdirSync,
  readFileSync,
  rmSync,
  statSync,
  symlinkSync,
  watch,
  writeFileSync,
} from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { FileAcmeStore } from '../../src/acme/file-store.js';
import { restartApp } from '../../src/cli/restart-command.js';
import { fetchVia, helloApp, startArrWith, writeAppsFile } from '../support/arr.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

const VICTIM = 'not for arr to write\n';

describe('files arr replaces: a planted symlink redirects no write', () => {
  const dirs: string[] = [];
  const tmp = (prefix: string) => {
    const d = mkdtempSync(join(tmpdir(), prefix));
    dirs.push(d);
    return d;
  };
  after(async () => {
    await stopAll();
    for (const d of dirs) rmSync(d, { recursive: true, force: true });
  });

  /** Files outside arr's directories, each behind a symlink planted at a name in `dir`. */
  function plant(dir: string, names: Iterable<string>): string[] {
    const victims: string[] = [];
    const away = tmp('arr-victims-');
    for (const name of names) {
      const victim = join(away, `v${victims.length}`);
      writeFileSync(victim, VICTIM);
      symlinkSync(victim, join(dir, name));
      victims.push(victim);
    }
    return victims;
  }

  const untouched = (victims: string[]) => {
    assert.ok(victims.length > 0);
    for (const v of victims)
      assert.equal(readFileSync(v, 'utf8'), VICTIM, `${v} was written through a symlink`);
  };

  /** The names created in `dir` (inotify) until `stop()`. */
  function created(dir: string): { names: Set<string>; watcher: FSWatcher } {
    const names = new Set<string>();
    const watcher = watch(dir, (_event, name) => {
      if (name) names.add(name);
    });
    return { names, watcher };
  }

  it('the state files', async () => {
    const dir = tmp('arr-state-');
    const seen = created(dir);
    const app = helloApp('sym', [{ host: 'sym.localhost', ssl: 'allowed' }]);
    const arr = await startArrWith([app], { extraArgs: ['--state-dir', dir] });
    seen.watcher.close();
    const finals = readdirSync(dir).sort();
    assert.deepEqual(
      finals.map((n) => n.replace(/^.*\./, '')),
      ['json', 'pids'],
    );
    const temporaries = [...seen.names].filter((n) => !finals.includes(n));
    assert.ok(temporaries.length > 0, 'arr was seen writing through temporary files');
    const oldNames = finals.map((n) => `${n}.${arr.proc.pid}.tmp`);
    const victims = plant(dir, new Set([...oldNames, ...temporaries]));

    // An instance starts: arr writes both files again.
    const r = await fetchVia(arr.port, 'sym.localhost', false);
    assert.equal(r.status, 200, r.text);
    const pids = join(dir, finals[1]!);
    await until('the instance in the state file', () => readFileSync(pids, 'utf8').split('\n').length > 2);
    untouched(victims);
    for (const f of finals) assert.ok(lstatSync(join(dir, f)).isFile(), `${f} is a file, not a symlink`);
    const status = JSON.parse(readFileSync(join(dir, finals[0]!), 'utf8')) as { instances: unknown[] };
    assert.equal(status.instances.length, 1);
    assert.equal(statSync(pids).mode & 0o777, 0o600);
    await arr.stop();
  });

  it('an apps file edited by arr restart (its mode kept)', async () => {
    const dir = tmp('arr-apps-');
    const file = writeAppsFile(join(dir, 'apps.json'), [
      helloApp('edited', [{ host: 'edited.localhost', ssl: 'allowed' }]),
    ]);
    chmodSync(file, 0o640);
    // In process: the name arr used before is `.apps.json.<this pid>.tmp`.
    const victims = plant(dir, [`.apps.json.${process.pid}.tmp`]);
    const errors: string[] = [];
    const code = await restartApp(
      'edited.localhost',
      { apps: file, stateDir: tmp('arr-state-') },
      () => {},
      (l) => errors.push(l),
    );
    assert.equal(code, 0, errors.join('\n'));
    untouched(victims);
    assert.ok(lstatSync(file).isFile());
    assert.match(readFileSync(file, 'utf8'), /"revision": 1/);
    assert.equal(statSync(file).mode & 0o777, 0o640);
    assert.deepEqual(readdirSync(dir).sort(), [`.apps.json.${process.pid}.tmp`, 'apps.json'].sort());
  });

  it('the ACME store: certificates, written durably', async () => {
    const dir = tmp('arr-acme-');
    const store = new FileAcmeStore(dir);
    const record = (serial: string) => ({
      host: 'store.localhost',
      cert: 'PEM',
      key: 'KEY',
      serial,
      updatedAt: Date.now(),
    });
    await store.putCert(record('1'));
    const certs = join(dir, 'certs');
    const seen = created(certs);
    await store.putCert(record('2'));
    // inotify events arrive after the write: wait for the rename of the temporary file.
    await until('the second write to be seen', () => seen.names.size >= 2);
    seen.watcher.close();
    const temporaries = [...seen.names].filter((n) => n !== 'store.localhost.json');
    const victims = plant(certs, temporaries);
    await store.putCert(record('3'));
    untouched(victims);
    assert.equal((await store.cert('store.localhost'))?.serial, '3');
    assert.equal(statSync(join(certs, 'store.localhost.json')).mode & 0o777, 0o600);
  });
});
