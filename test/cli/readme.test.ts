import assert from 'node:assert/strict';
import { copyFileSync, existsSync, mkdtempSync, readdirSync, readFileSync, rmSync } from 'node:fs';
import { get } from 'node:http';
import { tmpdir } from 'node:os';
import { dirname, join, normalize } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { connect } from 'node:tls';
import { type ArrUnderTest, fetchVia, pidOf, startArrWith } from '../support/arr.js';
import { type Route, removeTempDirs, runningNlb } from '../support/nlb.js';
import { freePort, freePorts } from '../support/ports.js';
import { ARR_CLI, repoRoot, run, runArr, stopAll } from '../support/proc.js';

const readme = readFileSync(join(repoRoot, 'README.md'), 'utf8');

/** The lines of a README section (from its `## ` heading to the next), fenced blocks included. */
function section(heading: string): string[] {
  const lines = readme.split('\n');
  const first = lines.indexOf(`## ${heading}`);
  assert.ok(first >= 0, `the README has a section "## ${heading}"`);
  const next = lines.findIndex((l, i) => i > first && l.startsWith('## '));
  return lines.slice(first, next < 0 ? undefined : next);
}

interface Curl {
  status: number;
  text: string;
}

/**
 * What each curl line of "Run it" says it shows, checked against arr serving the repository's
 * apps.json. A line added to the README, or changed, must be added here too.
 */
const runItLines: Record<string, (r: Curl, seen: Map<string, Curl>, ports: [number, number]) => void> = {
  'curl http://app1.localhost:31415/              # hello from app1 (port 8000, pid ...)': (r) => {
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /^hello from app1 \(port \d+, pid \d+\)/);
  },
  'curl -k https://app1.localhost:31416/          # the same instance over TLS, its own certificate by SNI': (
    r,
    seen,
  ) => {
    assert.equal(r.status, 200, r.text);
    const first = seen.get('curl http://app1.localhost:31415/');
    assert.equal(r.text, first?.text, 'the same instance (its port and pid)');
  },
  'curl http://app2.localhost:31415/              # app2, started on this first request': (r) => {
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /^hello from app2 /);
  },
  'curl -i http://secure-app1.localhost:31415/    # 301 to https: this host is "required"': (
    r,
    _,
    [, ssl],
  ) => {
    assert.equal(r.status, 301, r.text);
    assert.match(r.text, new RegExp(`^location: https://secure-app1\\.localhost:${ssl}/\\r?$`, 'im'));
  },
  'curl -k https://plain-app2.localhost:31416/    # 403: this host is "none"': (r) => {
    assert.equal(r.status, 403, r.text);
  },
};

/** Runs a README curl line against arr on these ports: the same arguments, the name resolved to loopback. */
async function curl(line: string, [port, sslport]: [number, number]): Promise<Curl> {
  const args = line
    .split('#')[0]!
    .trim()
    .split(/\s+/)
    .slice(1)
    .map((a) => a.replace(':31415', `:${port}`).replace(':31416', `:${sslport}`));
  const url = new URL(args.at(-1)!);
  const r = await run(
    'curl',
    [
      '-sS',
      '--max-time',
      '20',
      '--resolve',
      `${url.hostname}:${url.port}:127.0.0.1`,
      '-w',
      '\n%{http_code}',
      ...args,
    ],
    { timeoutMs: 30_000 },
  );
  assert.equal(r.code, 0, r.output);
  const cut = r.output.lastIndexOf('\n');
  return { status: Number(r.output.slice(cut + 1)), text: r.output.slice(0, cut) };
}

/** The subject's CN of the certificate arr serves for this name by SNI. */
function servedCertificate(port: number, servername: string): Promise<string> {
  return new Promise((resolve, reject) => {
    const s = connect({ host: '127.0.0.1', port, servername, rejectUnauthorized: false }, () => {
      resolve(String(s.getPeerCertificate().subject.CN));
      s.end();
    });
    s.once('error', reject);
  });
}

function getJson<T>(port: number, path: string): Promise<{ status: number; body: T }> {
  return new Promise((resolve, reject) => {
    get({ host: '127.0.0.1', port, path }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (d: string) => {
        text += d;
      });
      res.on('end', () => resolve({ status: res.statusCode ?? 0, body: JSON.parse(text) as T }));
    }).once('error', reject);
  });
}

/**
 * The README's commands, run where they can be (the systemd recipe and the farm's FerretDB are
 * run by their own suites: test/cli/service.test.ts, test/farm/), and the docs it links to.
 */
describe('the README', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-readme-'));
  const file = join(dir, 'apps.json');
  const stateDir = join(dir, 'state');
  let arr: ArrUnderTest;
  let admin = 0;

  before(async () => {
    // A copy of the sample apps file (arr restart writes it); its relative paths are resolved
    // against arr's working directory, the repository, as from a clone.
    copyFileSync(join(repoRoot, 'apps.json'), file);
    admin = await freePort();
    arr = await startArrWith([], { file, extraArgs: ['--admin', String(admin), '--state-dir', stateDir] });
  });
  after(async () => {
    await stopAll();
    removeTempDirs();
    rmSync(dir, { recursive: true, force: true });
  });

  it('"Run it": every curl line shows what its comment says, on the sample apps', async () => {
    const lines = section('Run it').filter((l) => l.startsWith('curl '));
    assert.deepEqual(lines, Object.keys(runItLines), 'the curl lines of "Run it" are those checked here');
    const seen = new Map<string, Curl>();
    const ports: [number, number] = [arr.port, arr.sslport];
    for (const line of lines) {
      const r = await curl(line, ports);
      runItLines[line]!(r, seen, ports);
      seen.set(line.split('#')[0]!.trim(), r);
    }
    assert.equal(await servedCertificate(arr.sslport, 'app1.localhost'), 'app1.localhost', 'its own by SNI');
  });

  it('the sample apps have names: arr restart app1 --wait, /api/apps/app1/output, arr apps and validate', async () => {
    const before = pidOf(await fetchVia(arr.port, 'app1.localhost', false));
    const restart = await runArr(['restart', 'app1', '--apps', file, '--wait', '--state-dir', stateDir]);
    assert.equal(restart.code, 0, restart.output);
    assert.match(restart.output, /^app1: replaced in arr \d+: revision 1 serves$/m);
    const after = pidOf(await fetchVia(arr.port, 'app1.localhost', false));
    assert.notEqual(after, before, 'a new instance');

    const output = await getJson<{ name: string; lines: { pid: number; text: string }[] }>(
      admin,
      '/api/apps/app1/output',
    );
    assert.equal(output.status, 200);
    assert.equal(output.body.name, 'app1');
    assert.ok(
      output.body.lines.some((l) => l.pid === after && /^app1 listening on \d+$/.test(l.text)),
      JSON.stringify(output.body.lines),
    );

    const apps = await runArr(['apps', '--apps', file, '--state-dir', stateDir]);
    assert.equal(apps.code, 0, apps.output);
    for (const name of ['app1', 'app2', 'ws1']) assert.match(apps.output, new RegExp(`^${name}\\s`, 'm'));
    const valid = await runArr(['validate', join(repoRoot, 'apps.json')]);
    assert.equal(valid.code, 0, valid.output);
    assert.match(valid.output, /^3 apps valid, 0 problems$/m);
  });

  it('"nlb": its nlb.json is the sample, and its curl line reaches app1 through nlb in front of arr', async () => {
    const lines = section('nlb');
    const json = lines.slice(lines.indexOf('```json') + 1);
    const shown = JSON.parse(json.slice(0, json.indexOf('```')).join('\n')) as Route[];
    const sample = JSON.parse(readFileSync(join(repoRoot, 'nlb.json'), 'utf8')) as Route[];
    assert.deepEqual(shown, sample);
    // The sample with free ports for its routes, and arr's ports for its backends' 31415 and 31416.
    const free = await freePorts(sample.length);
    const routePort = new Map(sample.map((r, i) => [r.port, free[i]!]));
    const arrPort = new Map([
      [31415, arr.port],
      [31416, arr.sslport],
    ]);
    const nlb = await runningNlb(
      sample.map((r) => ({
        ...r,
        port: routePort.get(r.port)!,
        backends: r.backends.map((b) => ({ ...b, port: arrPort.get(b.port)! })),
      })),
    );
    const curlLines = lines.filter((l) => l.startsWith('curl '));
    assert.deepEqual(curlLines, ['curl http://app1.localhost:8080/']);
    const url = new URL(curlLines[0]!.slice(5));
    const r = await fetchVia(routePort.get(Number(url.port))!, url.hostname, false);
    assert.equal(r.status, 200, r.text);
    assert.match(r.text, /^hello from app1 /);
    const tls = await fetchVia(routePort.get(8443)!, 'app1.localhost', true);
    assert.equal(tls.status, 200, tls.text);
    await nlb.stop();
  });

  it("docs/metrics.md lists every metric of arr's /metrics", async () => {
    const text = await new Promise<string>((resolve, reject) => {
      get({ host: '127.0.0.1', port: admin, path: '/metrics' }, (res) => {
        let body = '';
        res.setEncoding('utf8');
        res.on('data', (d: string) => {
          body += d;
        });
        res.on('end', () => resolve(body));
      }).once('error', reject);
    });
    const names = [...text.matchAll(/^# HELP (arr_\w+)/gm)].map((m) => m[1]!);
    assert.ok(names.length > 10, text);
    const doc = readFileSync(join(repoRoot, 'docs/metrics.md'), 'utf8');
    assert.deepEqual(
      names.filter((n) => !doc.includes(`| \`${n}\` |`)),
      [],
    );
  });

  it('docs/options.md lists every option of `arr --help`, and no other', async () => {
    const help = await run(process.execPath, [ARR_CLI, '--help']);
    assert.equal(help.code, 0, help.output);
    const flags = new Set(
      [...help.output.matchAll(/^ {2}(?:-\w, )? *(--[\w-]+)/gm)]
        .map((m) => m[1]!)
        .filter((f) => f !== '--help' && f !== '--version'),
    );
    assert.ok(flags.size > 30, [...flags].join(' '));
    const options = readFileSync(join(repoRoot, 'docs/options.md'), 'utf8');
    const table = new Set(
      [...options.matchAll(/^\| `(?:-\w, )?(--[\w-]+)/gm)].map((m) => m[1]!.replace(/^--no-/, '--')),
    );
    assert.deepEqual([...table].sort(), [...flags].sort());
  });

  it('every link of the README and docs/ reaches a file, and a heading where it names one', () => {
    const pages = ['README.md', ...readdirSync(join(repoRoot, 'docs')).map((f) => `docs/${f}`)].filter((f) =>
      f.endsWith('.md'),
    );
    const broken: string[] = [];
    for (const page of pages) {
      const text = readFileSync(join(repoRoot, page), 'utf8').replace(/```[\s\S]*?```/g, '');
      for (const [, target] of text.matchAll(/\]\(([^)\s]+)\)/g)) {
        if (/^(https?|mailto):/.test(target!)) continue;
        const [path, anchor] = target!.split('#');
        const file = path ? normalize(join(dirname(page), path)) : page;
        if (!existsSync(join(repoRoot, file))) broken.push(`${page}: ${target} (no such file)`);
        else if (anchor && file.endsWith('.md') && !anchorsOf(file).has(anchor))
          broken.push(`${page}: ${target} (no such heading)`);
      }
    }
    assert.deepEqual(broken, []);
  });
});

/** The anchors GitHub makes of a page's headings, and its explicit `<a id="...">`. */
function anchorsOf(page: string): Set<string> {
  const text = readFileSync(join(repoRoot, page), 'utf8');
  const anchors = new Set<string>();
  for (const [, heading] of text.matchAll(/^#+ (.*)$/gm))
    anchors.add(
      heading!
        .trim()
        .toLowerCase()
        .replace(/[^\w\- ]/g, '')
        .replace(/ /g, '-'),
    );
  for (const [, id] of text.matchAll(/<a id="([^"]+)"/g)) anchors.add(id!);
  return anchors;
}
