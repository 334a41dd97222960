#!/usr/bin/env node
// `npm test`: type check and build, lint, then every test file under test/ with node's runner.
// Extra arguments are passed to `node --test` (e.g. `npm test -- --test-name-pattern=nlb`);
// ARR_TEST_FILES=substring limits the run to matching test files.
import { spawnSync } from 'node:child_process';
import { readdirSync, rmSync } from 'node:fs';
import { join, relative } from 'node:path';

const root = new URL('..', import.meta.url).pathname;
const step = (name, cmd, args) => {
  console.log(`\n# ${name}: ${cmd} ${args.join(' ')}`);
  const r = spawnSync(cmd, args, { cwd: root, stdio: 'inherit' });
  if (r.status !== 0) {
    console.error(`# ${name} failed`);
    process.exit(r.status ?? 1);
  }
};

const bin = (name) => join(root, 'node_modules', '.bin', name);
// A clean build, so that tests whose sources were removed do not linger in dist/.
rmSync(join(root, 'dist'), { recursive: true, force: true });
step('build', bin('tsc'), ['-p', 'tsconfig.json']);
step('lint', bin('biome'), ['check', 'src', 'harness', 'test', 'samples', 'scripts', 'bench']);

const walk = (dir) =>
  readdirSync(dir, { withFileTypes: true }).flatMap((e) =>
    e.isDirectory() ? walk(join(dir, e.name)) : e.name.endsWith('.test.js') ? [join(dir, e.name)] : [],
  );
const only = process.env.ARR_TEST_FILES;
const files = walk(join(root, 'dist', 'test'))
  .filter((f) => !only || f.includes(only))
  .map((f) => relative(root, f))
  .sort();
if (files.length === 0) {
  console.error('# no test files found');
  process.exit(1);
}
step('tests', process.execPath, ['--test', '--test-reporter=spec', ...process.argv.slice(2), ...files]);
