import assert from 'node:assert/strict';
import { chmodSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { fetchVia, pidOf, startArrWith } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { ARR_CLI, run, stopAll } from '../support/proc.js';

const arr = (args: string[], cwd?: string) =>
  run(process.execPath, [ARR_CLI, ...args], { env: cliEnv(), cwd, timeoutMs: 30_000 });

/** `arr init`, `arr validate` on the typos and mistakes a start would meet, `arr apps` of a served file. */
describe('arr init, validate and apps', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-init-validate-'));
  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('init writes a starter that validates, and never overwrites a file', async () => {
    const work = join(dir, 'init');
    mkdirSync(work);
    const r = await arr(['init'], work);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /wrote .*apps\.json: one app, "hello"/);
    const v = await arr(['validate', 'apps.json'], work);
    assert.equal(v.code, 0, v.output);
    assert.match(v.output, /^1 app valid, 0 problems$/m);
    writeFileSync(join(work, 'mine.json'), 'mine\n');
    const again = await arr(['init', '--apps', 'mine.json'], work);
    assert.equal(again.code, 1, again.output);
    assert.match(again.output, /^arr: init: .*mine\.json exists already: it is left as it is/m);
    assert.equal(readFileSync(join(work, 'mine.json'), 'utf8'), 'mine\n');
  });

  it('validate reports unknown fields (with the field meant), a missing or unrunnable program, a cwd that is no directory', async () => {
    const script = join(dir, 'not-executable.sh');
    writeFileSync(script, '#!/bin/sh\n');
    chmodSync(script, 0o644);
    const file = join(dir, 'typos.json');
    const doc = (id: string, extra: Record<string, unknown>, process: Record<string, unknown> = {}) =>
      JSON.stringify({
        _id: id,
        process: { executable: 'node', args: ['x.js'], ...process },
        hosts: [{ host: `${id}.localhost`, ssl: 'allowed' }],
        ...extra,
      });
    writeFileSync(
      file,
      `${[
        doc('typos', { enviroment: { A: 'b' }, readyy: '/ok', instance: 2 }, { arg: ['y'] }),
        doc('noprog', {}, { executable: 'no-such-program-anywhere' }),
        doc('noexec', {}, { executable: script }),
        doc('nocwd', { cwd: script }),
        JSON.stringify({
          _id: 'hostfield',
          process: { executable: 'node' },
          hosts: [{ host: 'h.localhost', ssl: 'allowed', sll: 'x' }],
        }),
      ].join('\n')}\n`,
    );
    const r = await arr(['validate', file]);
    assert.equal(r.code, 1, r.output);
    const expected = [
      'line 1, app typos: enviroment: unknown field, ignored (did you mean "env"?)',
      'line 1, app typos: readyy: unknown field, ignored (did you mean "ready"?)',
      'line 1, app typos: instance: unknown field, ignored (did you mean "instances"?)',
      'line 1, app typos: process.arg: unknown field, ignored (did you mean "args"?)',
      `line 2, app noprog: process.executable: "no-such-program-anywhere" is not found on the PATH (`,
      `line 3, app noexec: process.executable: "${script}" is not executable (EACCES`,
      `line 4, app nocwd: cwd: "${script}" is not a directory`,
      'line 5, app hostfield: hosts[0].sll: unknown field, ignored (did you mean "ssl"?)',
    ];
    for (const e of expected) assert.ok(r.output.includes(e), `${e}\n in:\n${r.output}`);
    assert.match(r.output, /^0 apps valid, 8 problems$/m);
  });

  it('apps shows where the instances of a file served on this machine run, with their pids', async () => {
    const stateDir = join(dir, 'state');
    const served = await startArrWith(
      [
        {
          name: 'listed',
          process: {
            executable: process.execPath,
            args: [join(ARR_CLI, '../../../../samples/hello/server.js'), 'listed'],
          },
          hosts: [{ host: 'listed.localhost', ssl: 'allowed' }],
        },
      ],
      { extraArgs: ['--state-dir', stateDir] },
    );
    const pid = pidOf(await fetchVia(served.port, 'listed.localhost', false));
    const r = await arr(['apps', '--apps', served.appsFile!, '--state-dir', stateDir]);
    assert.equal(r.code, 0, r.output);
    assert.match(r.output, /^APP\s+ID\s+CAP\s+HOST\s+SSL\s+CERT\s+RUNNING$/m);
    assert.match(
      r.output,
      new RegExp(
        `^listed\\s.*listed\\.localhost\\s+allowed\\s+default\\s+127\\.0\\.0\\.1:\\d+ \\(pid ${pid}\\)$`,
        'm',
      ),
    );
    assert.match(r.output, /1 app in .*, 1 instance running/);
    await served.stop();
  });
});
