import assert from 'node:assert/strict';
import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fetchVia } from '../support/arr.js';
import { cliEnv } from '../support/cli-env.js';
import { freePorts } from '../support/ports.js';
import { repoRoot, run, runOk, start, stopAll } from '../support/proc.js';

const npm = 'npm';
const version = (JSON.parse(readFileSync(join(repoRoot, 'package.json'), 'utf8')) as { version: string })
  .version;

/**
 * The package as a user gets it: `npm pack` of the repository (built by `npm test` already, so
 * its prepack is not run again under the other suites' feet), installed into an empty prefix
 * (dependencies from npm's cache where it has them), then the README's first steps with the
 * installed `arr`: --version, init in an empty folder, and serving the starter.
 */
describe('the packed package', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-package-'));
  const prefix = join(dir, 'prefix');
  const work = join(dir, 'work');
  let tarball = '';
  let files: string[] = [];
  const arr = () => join(prefix, 'bin', 'arr');
  // npm's own environment: its cache as the user has it, none of the test's ARR_* variables.
  const env = cliEnv({
    npm_config_update_notifier: 'false',
    npm_config_fund: 'false',
    npm_config_audit: 'false',
  });

  before(async () => {
    mkdirSync(work);
    const packed = await runOk(npm, ['pack', '--json', '--ignore-scripts', '--pack-destination', dir], {
      env,
      timeoutMs: 120_000,
    });
    const info = JSON.parse(packed.slice(packed.indexOf('['))) as {
      filename: string;
      files: { path: string }[];
    }[];
    tarball = join(dir, info[0]!.filename);
    files = info[0]!.files.map((f) => f.path);
    await runOk(
      npm,
      ['install', '-g', '--prefix', prefix, '--prefer-offline', '--no-audit', '--no-fund', tarball],
      {
        env,
        timeoutMs: 240_000,
      },
    );
  });
  after(async () => {
    await stopAll();
    rmSync(dir, { recursive: true, force: true });
  });

  it('is arr-proxy with its LICENSE and unit files, and no source maps pointing at sources it lacks', () => {
    assert.match(tarball, new RegExp(`arr-proxy-${version.replace(/\./g, '\\.')}\\.tgz$`));
    for (const f of [
      'LICENSE',
      'contrib/systemd/arr.service',
      'contrib/systemd/arr.socket',
      'dist/src/cli/arr.js',
    ])
      assert.ok(files.includes(f), `${f} is in the package`);
    assert.deepEqual(
      files.filter((f) => f.endsWith('.map')),
      [],
    );
    assert.ok(!files.some((f) => f.startsWith('dist/test/') || f.startsWith('dist/bench/')));
  });

  it('arr --version and nlb --version say the package version, from any folder', async () => {
    for (const bin of ['arr', 'nlb']) {
      const r = await run(join(prefix, 'bin', bin), ['--version'], { cwd: work, env });
      assert.equal(r.code, 0, r.output);
      assert.equal(r.output.trim(), version);
    }
  });

  it('arr init writes a starter that the installed arr serves; a second init leaves it alone', async () => {
    const [port, sslport] = await freePorts(2);
    const init = await run(arr(), ['init', '-p', String(port)], { cwd: work, env });
    assert.equal(init.code, 0, init.output);
    const text = readFileSync(join(work, 'apps.json'), 'utf8');
    const again = await run(arr(), ['init'], { cwd: work, env });
    assert.equal(again.code, 1, again.output);
    assert.match(again.output, /apps\.json exists already/);
    assert.equal(readFileSync(join(work, 'apps.json'), 'utf8'), text, 'not overwritten');

    // Which modules the running arr loaded, written at its exit: file mode needs neither the
    // MongoDB driver nor the ACME client.
    const probe = join(dir, 'probe.cjs');
    const loaded = join(dir, 'loaded.txt');
    writeFileSync(
      probe,
      `process.on('exit', () => require('fs').writeFileSync(${JSON.stringify(loaded)}, Object.keys(require.cache).join('\\n')));\n`,
    );
    const served = start(
      arr(),
      ['-p', String(port), '-s', String(sslport), '--bind', '127.0.0.1', '--state-dir', join(dir, 'state')],
      { cwd: work, env: { ...env, NODE_OPTIONS: `--require ${probe}` } },
    );
    await served.waitFor('arr listening on');
    const r = await fetchVia(port!, 'hello.localhost', false);
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /^hello from hello/);
    assert.equal(await served.stop(), 0);
    const modules = readFileSync(loaded, 'utf8');
    assert.doesNotMatch(modules, /node_modules\/(mongodb|acme-client)\//);
  });
});
