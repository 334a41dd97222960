import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, startArrWith } from '../support/arr.js';
import { logLines } from '../support/nlb.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

/** An app that writes a line on stderr at start, answers, and exits (code 3) after answering /crash. */
const CRASHY = `
const http = require('node:http');
process.stderr.write('crashy says hello on stderr\\n');
http.createServer((req, res) => {
  res.end('ok');
  if (req.url === '/crash') setTimeout(() => process.exit(3), 20);
}).listen(Number(process.env.PORT));
`;

/**
 * What an operator at `--log-level warn` sees: an instance that crashes while serving (warn), a
 * start that fails (error), what the start checks find and the sample certificate served for a
 * real name (warn); instances' stderr at the level `--app-stderr-level` says. No info line.
 */
describe('log levels an operator can act on', () => {
  let arr: ArrUnderTest;
  const lines = () => logLines(arr.proc.output());
  const at = (level: string, pattern: RegExp) =>
    lines().some((l) => l.level === level && pattern.test(l.msg));

  before(async () => {
    arr = await startArrWith(
      [
        {
          name: 'crashy',
          process: { executable: process.execPath, args: ['-e', CRASHY] },
          hosts: [{ host: 'crashy.localhost', ssl: 'allowed' }],
        },
        {
          name: 'missing',
          process: { executable: '/nonexistent/program' },
          hosts: [{ host: 'missing.example.test', ssl: 'allowed' }],
        },
      ],
      {
        extraArgs: ['--log-level', 'warn', '--app-stderr-level', 'warn'],
        // At warn, arr says nothing when it listens: the start checks' warning is the sign.
        ready: (a) => a.proc.waitFor('/nonexistent/program'),
      },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('warns at start of a program that does not exist, and of the sample certificate for a real name', () => {
    assert.ok(
      at('warn', /^registry: app [^:]+: process\.executable: "\/nonexistent\/program" does not exist$/),
      arr.proc.output(),
    );
    assert.ok(
      at(
        'warn',
        /^the sample certificate \(.*default-cert\.pem\), whose private key is public, is served for missing\.example\.test: give --cert and --key/,
      ),
      arr.proc.output(),
    );
  });

  it('a start that fails is an error', async () => {
    const r = await fetchVia(arr.port, 'missing.example.test', false);
    assert.equal(r.status, 502, r.text);
    await until('the error', () =>
      at('error', /^activation of missing failed: missing: cannot run "\/nonexistent\/program" \(ENOENT\)$/),
    );
  });

  it('an instance that crashes while serving is a warning; its stderr is at --app-stderr-level', async () => {
    const r = await fetchVia(arr.port, 'crashy.localhost', false, { path: '/crash' });
    assert.equal(r.status, 200, r.text);
    await until('the crash', () =>
      at('warn', /^crashy\[\d+\] exited with code 3 while serving; its next request starts it again$/),
    );
    // Instances' lines are written in the background (src/util/bounded-log.ts): waited for.
    await until('its stderr line', () => at('warn', /^crashy\[\d+\]: crashy says hello on stderr$/));
  });

  it('writes no info line at --log-level warn', () => {
    assert.deepEqual(
      lines().filter((l) => l.level !== 'warn' && l.level !== 'error'),
      [],
    );
    for (const l of lines())
      assert.match(String(l.time), /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/, 'ISO times');
  });
});
