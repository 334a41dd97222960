import assert from 'node:assert/strict';
import { X509Certificate } from 'node:crypto';
import { readdirSync, readFileSync } from 'node:fs';
import { request } from 'node:http';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MongoClient, type ObjectId } from 'mongodb';
import type { AppView, Overview, Tick } from '../../src/ops/dashboard/dashboard-data.js';
import { DASHBOARD_DIR } from '../../src/ops/dashboard/dashboard-files.js';
import type { Series } from '../../src/ops/metrics/traffic.js';
import type { OutputLine } from '../../src/ops/output-log.js';
import { claimInRegistry, scriptApp } from '../support/activation.js';
import {
  type AppDoc,
  type ArrUnderTest,
  fetchVia,
  helloApp,
  type Reply,
  startArrWith,
  writeAppsFile,
} from '../support/arr.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { repoRoot, runArr, stopAll } from '../support/proc.js';
import { certificateFor } from '../support/tls.js';
import { openWs } from '../support/wsclient.js';

// The dashboard's JSON API on --admin, against a real arr: its shape, what it reports of apps,
// instances, traffic and output, the token rules, and the farm's nodes with MongoDB.

const HOSTILE = '<img src=x onerror="globalThis.pwned=1">';
const TOKEN = 'test-token-0123456789abcdef';

/** GET on the admin endpoint, with a Host it accepts unless given. */
function adminGet(port: number, path: string, headers: Record<string, string> = {}): Promise<Reply> {
  return fetchVia(port, `127.0.0.1:${port}`, false, { path, headers });
}

async function getJson<T>(port: number, path: string, headers: Record<string, string> = {}): Promise<T> {
  const r = await adminGet(port, path, headers);
  assert.equal(r.status, 200, `${path}: ${r.status} ${r.text}`);
  assert.match(String(r.headers['content-type']), /^application\/json/);
  return JSON.parse(r.text) as T;
}

/** The first tick of /api/events: the stream is read up to its first event, then closed. */
function firstTick(
  port: number,
  headers: Record<string, string> = {},
): Promise<{ status: number; tick?: Tick; type?: string }> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path: '/api/events', headers, agent: false }, (res) => {
      if (res.statusCode !== 200) {
        res.resume();
        resolve({ status: res.statusCode ?? 0 });
        return;
      }
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (chunk: string) => {
        text += chunk;
        const m = /event: tick\ndata: (.*)\n\n/.exec(text);
        if (m) {
          req.destroy();
          resolve({
            status: 200,
            tick: JSON.parse(m[1]!) as Tick,
            type: String(res.headers['content-type']),
          });
        }
      });
    });
    req.setTimeout(10_000, () => req.destroy(new Error('no tick in 10 s')));
    req.on('error', reject);
    req.end();
  });
}

const sum = (xs: number[]) => xs.reduce((a, b) => a + b, 0);

/** When a sample certificate expires, as the overview gives it (ISO 8601). */
const expiry = (name: string) =>
  new Date(
    Date.parse(new X509Certificate(readFileSync(join(repoRoot, `certs/${name}-cert.pem`))).validTo),
  ).toISOString();

const alpha = (): AppDoc => ({
  ...helloApp('alpha', [
    { host: 'alpha.localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/app1-key.pem' },
    { host: 'alpha.example.test', ssl: 'required' },
  ]),
  name: 'alpha',
});
const beta = (): AppDoc => ({
  ...helloApp('beta', [{ host: 'beta.localhost', ssl: 'none' }], 2),
  name: 'beta',
});
const crashy = (): AppDoc =>
  scriptApp(
    'crashy',
    'crashy.localhost',
    "console.error('crashy: cannot open /etc/crashy.conf'); process.exit(3)",
  );
const hostile = (): AppDoc => ({
  ...helloApp('hostile', [{ host: 'hostile.localhost', ssl: 'allowed' }]),
  name: HOSTILE,
});

describe('the dashboard API on --admin', () => {
  let arr: ArrUnderTest;
  let admin: number;
  const app = (o: Overview, name: string): AppView => {
    const found = o.apps.find((a) => a.name === name);
    assert.ok(found, `${name} in the overview: ${o.apps.map((a) => a.name).join(', ')}`);
    return found;
  };

  before(async () => {
    admin = await freePort();
    arr = await startArrWith([alpha(), beta(), crashy(), hostile()], {
      extraArgs: ['--admin', `127.0.0.1:${admin}`],
    });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('GET /api/overview: every app with its hosts, policies, certificate sources and cap', async () => {
    const o = await getJson<Overview>(admin, '/api/overview');
    assert.equal(o.node, '127.0.0.1');
    assert.deepEqual(o.registry, { kind: 'file', reachable: true, problemCount: 0, problems: [] });
    assert.equal(o.nodes, null, 'no farm without --mongo');
    assert.equal(o.matched, 4);
    assert.equal(o.offset, 0);
    assert.deepEqual(
      o.apps.map((a) => a.name),
      [HOSTILE, 'alpha', 'beta', 'crashy'],
      'sorted by name',
    );
    const a = app(o, 'alpha');
    assert.equal(a.cap, 1);
    assert.deepEqual(a.hosts, [
      { host: 'alpha.localhost', ssl: 'allowed', certificate: { source: 'own', expires: expiry('app1') } },
      {
        host: 'alpha.example.test',
        ssl: 'required',
        certificate: { source: 'default', expires: expiry('default') },
      },
    ]);
    assert.deepEqual(a.instances, [], 'nothing started yet');
    assert.equal(a.backoff, null);
    assert.equal(a.failedStarts, 0);
    assert.deepEqual(a.traffic, { requests: 0, errors: 0, p50: 0, p99: 0, websockets: 0 });
    assert.equal(app(o, 'beta').cap, 2);
    assert.equal(app(o, HOSTILE).name, HOSTILE, 'a name is data: returned as it is');
    assert.deepEqual(o.summary, {
      apps: 4,
      instances: 0,
      backingOff: 0,
      requests: 0,
      errors: 0,
      websockets: 0,
      unknownHosts: 0,
    });
  });

  it('q, offset, limit and sort select a page', async () => {
    const q = await getJson<Overview>(admin, '/api/overview?q=BETA.local');
    assert.equal(q.matched, 1);
    assert.deepEqual(
      q.apps.map((a) => a.name),
      ['beta'],
    );
    const page = await getJson<Overview>(admin, '/api/overview?offset=1&limit=2');
    assert.equal(page.matched, 4);
    assert.equal(page.offset, 1);
    assert.deepEqual(
      page.apps.map((a) => a.name),
      ['alpha', 'beta'],
    );
    const bad = await getJson<Overview>(admin, '/api/overview?offset=-3&limit=x&sort=nonsense');
    assert.equal(bad.apps.length, 4, 'bad numbers are ignored');
  });

  it('an instance shows with its node, port, pid, state and uptime; traffic moves its series', async () => {
    const first = await fetchVia(arr.port, 'alpha.localhost', false);
    assert.equal(first.status, 200, first.text);
    const pid = Number(/pid (\d+)/.exec(first.text)![1]);
    const port = Number(/\(port (\d+),/.exec(first.text)![1]);
    const o = await getJson<Overview>(admin, '/api/overview?q=alpha');
    const [instance] = app(o, 'alpha').instances;
    assert.deepEqual(
      { ...instance, uptime: undefined, cpu: undefined, memory: undefined },
      {
        node: '127.0.0.1',
        port,
        pid,
        state: 'ready',
        uptime: undefined,
        local: true,
        cpu: undefined,
        memory: undefined,
      },
    );
    // Its CPU seconds and memory (RSS: it has no memory cgroup) are read now.
    assert.equal(typeof instance?.cpu, 'number');
    assert.ok((instance?.memory ?? 0) > 1 << 20, String(instance?.memory));
    assert.ok(typeof instance!.uptime === 'number' && instance!.uptime >= 0);
    assert.equal(o.summary.instances, 1);

    const sent = 30;
    for (let i = 1; i < sent; i++)
      assert.equal((await fetchVia(arr.port, 'alpha.localhost', false)).status, 200);
    // The series holds complete seconds: every request is in it once its second is over.
    const series = await until('the 30 requests in alpha series', async () => {
      const s = await getJson<Series & { app: string; name: string; step: number }>(
        admin,
        '/api/apps/alpha/series',
      );
      return sum(s.requests) === sent ? s : undefined;
    });
    assert.equal(series.name, 'alpha');
    assert.equal(series.step, 1);
    for (const k of ['requests', 'errors', 'p50', 'p99', 'websockets'] as const)
      assert.equal(series[k].length, 180, `${k}: one value per second of the last 3 minutes`);
    assert.equal(sum(series.errors), 0);
    const busy = series.requests.findIndex((n) => n > 0);
    assert.ok(series.p50[busy]! > 0 && series.p99[busy]! >= series.p50[busy]!, 'latencies of a busy second');
    // By id as well as by name.
    const byId = await getJson<Series>(admin, `/api/apps/${encodeURIComponent(app(o, 'alpha').id)}/series`);
    assert.equal(sum(byId.requests), sent);
  });

  it('open WebSockets are counted while they are open', async () => {
    const ws = await openWs(arr.port, 'alpha.localhost', false);
    try {
      await until('alpha to show 1 open WebSocket', async () => {
        const o = await getJson<Overview>(admin, '/api/overview?q=alpha');
        return app(o, 'alpha').traffic.websockets === 1;
      });
    } finally {
      ws.ws.close();
    }
    await until('alpha to show no open WebSocket', async () => {
      const s = await getJson<Series>(admin, '/api/apps/alpha/series');
      return s.websockets.at(-1) === 0 && Math.max(...s.websockets) === 1;
    });
  });

  it('an app that keeps failing: 5xx in its series, backing off, its stderr in its output', async () => {
    const seen = await until(
      'crashy to be in back-off',
      async () => {
        const r = await fetchVia(arr.port, 'crashy.localhost', false);
        assert.ok(r.status >= 500, `crashy answers ${r.status}`);
        const o = await getJson<Overview>(admin, '/api/overview?q=crashy');
        const c = app(o, 'crashy');
        return c.backoff ? { c, o } : undefined;
      },
      { timeoutMs: 20_000, intervalMs: 50 },
    );
    assert.ok(seen.c.backoff!.failures >= 2, JSON.stringify(seen.c.backoff));
    assert.ok(seen.c.backoff!.retryIn >= 1);
    assert.equal(seen.c.failedStarts, seen.c.backoff!.failures);
    assert.deepEqual(seen.c.instances, [], 'no process while it backs off');
    assert.equal(seen.o.summary.backingOff, 1);
    const s = await until('crashy 5xx in its series', async () => {
      const x = await getJson<Series>(admin, '/api/apps/crashy/series');
      return sum(x.errors) >= 2 ? x : undefined;
    });
    assert.equal(sum(s.errors), sum(s.requests), 'every answer was a 5xx');
    const out = await getJson<{ lines: OutputLine[] }>(admin, '/api/apps/crashy/output');
    const line = out.lines.find((l) => l.text === 'crashy: cannot open /etc/crashy.conf');
    assert.ok(line, JSON.stringify(out.lines));
    assert.equal(line.stream, 'stderr');
    assert.ok(line.pid > 0 && line.time > 0);
  });

  it("GET /api/apps/:app/output: the last lines of the app's instances, by name or id; unknown apps 404", async () => {
    const out = await getJson<{ app: string; name: string; lines: OutputLine[] }>(
      admin,
      '/api/apps/alpha/output',
    );
    assert.equal(out.name, 'alpha');
    assert.ok(
      out.lines.some((l) => /^alpha listening on \d+$/.test(l.text) && l.stream === 'stdout'),
      JSON.stringify(out.lines),
    );
    const hostileOut = await getJson<{ name: string }>(
      admin,
      `/api/apps/${encodeURIComponent(HOSTILE)}/output`,
    );
    assert.equal(hostileOut.name, HOSTILE);
    const missing = await adminGet(admin, '/api/apps/nobody/series');
    assert.equal(missing.status, 404);
    assert.match(String(missing.headers['content-type']), /^application\/json/);
    assert.equal((await adminGet(admin, '/api/apps/%E0%A4%A/output')).status, 400);
  });

  it('GET /api/events: Server-Sent Events, a tick with the summary and the busy apps', async () => {
    const { status, tick, type } = await firstTick(admin);
    assert.equal(status, 200);
    assert.match(type!, /^text\/event-stream/);
    assert.equal(typeof tick!.version, 'number');
    assert.deepEqual(tick!.registry, { reachable: true, problemCount: 0 });
    assert.equal(tick!.summary.apps, 4);
    assert.equal(typeof tick!.traffic, 'object');
  });

  it('the page, its script and style sheet: served by arr under a CSP without inline script', async () => {
    const page = await adminGet(admin, '/');
    assert.equal(page.status, 200);
    assert.match(String(page.headers['content-type']), /^text\/html/);
    const csp = String(page.headers['content-security-policy']);
    assert.match(csp, /default-src 'self'/);
    assert.match(csp, /script-src 'self'(;|$)/);
    assert.doesNotMatch(csp, /unsafe-inline|unsafe-eval/);
    assert.match(csp, /frame-ancestors 'none'/);
    assert.doesNotMatch(page.text, /<script>|<style>|style="| on[a-z]+="/i, 'no inline script or style');
    assert.doesNotMatch(page.text, /https?:\/\//, 'nothing from elsewhere');
    // The script's modules: every file of page/dashboard/, which dashboard.js imports from there.
    const modules = readdirSync(join(DASHBOARD_DIR, 'dashboard')).map((name) => `/dashboard/${name}`);
    assert.ok(modules.length > 0);
    const scripts = ['/dashboard.js', ...modules];
    for (const [path, type] of [
      ...scripts.map((path) => [path, /^text\/javascript/] as const),
      ['/dashboard.css', /^text\/css/] as const,
    ]) {
      const r = await adminGet(admin, path);
      assert.equal(r.status, 200, path);
      assert.match(String(r.headers['content-type']), type);
      assert.equal(r.headers['x-content-type-options'], 'nosniff');
      if (scripts.includes(path))
        assert.doesNotMatch(r.text, /innerHTML|outerHTML|insertAdjacentHTML|document\.write/, path);
    }
    assert.equal((await adminGet(admin, '/dashboard/missing.js')).status, 404);
  });
});

describe('instance states on the dashboard: starting, ready, draining', () => {
  let arr: ArrUnderTest;
  let admin: number;
  // Listens 3 s after it starts: long enough to be seen starting.
  const slow = scriptApp(
    'slow',
    'slow.localhost',
    "setTimeout(() => require('node:http').createServer((q, s) => s.end('slow ' + process.env.V)).listen(process.env.PORT), 3000)",
  );
  const docs = [alpha(), slow];

  before(async () => {
    admin = await freePort();
    arr = await startArrWith(docs, { extraArgs: ['--admin', `127.0.0.1:${admin}`, '--drain', '60'] });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  const instancesOf = async (name: string) => {
    const o = await getJson<Overview>(admin, `/api/overview?q=${name}`);
    return o.apps.find((a) => a.name === name)!.instances;
  };

  it('an instance that does not listen yet is starting, then ready', async () => {
    const reply = fetchVia(arr.port, 'slow.localhost', false);
    const starting = await until('slow to be starting', async () => {
      const [i] = await instancesOf('slow');
      return i?.state === 'starting' ? i : undefined;
    });
    assert.ok(starting.pid! > 0 && starting.port > 0);
    assert.equal((await reply).status, 200);
    const [ready] = await instancesOf('slow');
    assert.deepEqual([ready!.state, ready!.pid, ready!.port], ['ready', starting.pid, starting.port]);
  });

  it('a replaced instance with an open WebSocket drains beside its successor', async () => {
    assert.equal((await fetchVia(arr.port, 'alpha.localhost', false)).status, 200);
    const [old] = await instancesOf('alpha');
    const ws = await openWs(arr.port, 'alpha.localhost', false);
    try {
      // A change of env: a rolling replacement; the WebSocket holds the old one for the drain.
      writeAppsFile(arr.appsFile!, [{ ...docs[0]!, env: { V: '2' } }, slow]);
      const both = await until(
        'alpha to run a new instance beside the draining one',
        async () => {
          const list = await instancesOf('alpha');
          return list.length === 2 && list.some((i) => i.state === 'draining') ? list : undefined;
        },
        { timeoutMs: 20_000 },
      );
      const draining = both.find((i) => i.state === 'draining')!;
      const fresh = both.find((i) => i !== draining)!;
      assert.equal(draining.pid, old!.pid);
      assert.equal(fresh.state, 'ready');
      assert.notEqual(fresh.pid, old!.pid);
    } finally {
      ws.ws.close();
    }
    await until('the drained instance to be gone', async () => (await instancesOf('alpha')).length === 1, {
      timeoutMs: 20_000,
    });
  });
});

describe('--admin-token', () => {
  after(stopAll);

  it('an address other than loopback without a token: arr refuses to start (exit 2), naming the option', async () => {
    for (const env of [{}, { ARR_ADMIN_TOKEN: '' }]) {
      const r = await runArr(['--admin', '192.0.2.1:0', '-p', '0', '-s', '0'], { env });
      assert.equal(r.code, 2, r.output);
      assert.match(r.output, /--admin 192\.0\.2\.1 is not a loopback address: give --admin-token TOKEN/);
    }
  });

  it('a short token, or a token without --admin, is a usage error that does not show the token', async () => {
    const short = await runArr(['--admin', '0', '--admin-token', 'tiny-secret', '-p', '0', '-s', '0']);
    assert.equal(short.code, 2, short.output);
    assert.match(short.output, /--admin-token must be at least 16 characters long/);
    assert.doesNotMatch(short.output, /tiny-secret/);
    const alone = await runArr(['-p', '0', '-s', '0'], { env: { ARR_ADMIN_TOKEN: TOKEN } });
    assert.equal(alone.code, 2, alone.output);
    assert.match(alone.output, /--admin-token is given without --admin/);
  });

  describe('with a token', () => {
    let arr: ArrUnderTest;
    let admin: number;
    const bearer = (t: string) => ({ authorization: `Bearer ${t}` });

    before(async () => {
      admin = await freePort();
      // From the environment (which keeps it out of the command line), logging everything.
      arr = await startArrWith([alpha()], {
        extraArgs: ['--admin', `127.0.0.1:${admin}`, '--log-level', 'trace', '--access-log'],
        env: { ARR_ADMIN_TOKEN: TOKEN },
      });
    });
    after(async () => {
      await arr?.stop();
    });

    it('every admin path but /healthz and the page files: 401 without the token or with a wrong one, 200 with it', async () => {
      const paths = [
        '/api/overview',
        '/api/apps/alpha/series',
        '/api/apps/alpha/output',
        '/metrics',
        '/nothing',
      ];
      let missing = 0;
      let wrong = 0;
      for (const path of paths) {
        const none = await adminGet(admin, path);
        missing++;
        assert.equal(none.status, 401, `${path} without a token`);
        assert.match(String(none.headers['www-authenticate']), /^Bearer/);
        assert.doesNotMatch(none.text, /alpha|arr_/, 'nothing of arr state');
        for (const h of [
          bearer(`${TOKEN}x`),
          bearer('x'),
          { authorization: TOKEN },
          { authorization: `Basic ${TOKEN}` },
        ]) {
          const r = await adminGet(admin, path, h);
          wrong++;
          assert.equal(r.status, 401, `${path} with ${JSON.stringify(h)}`);
        }
        const ok = await adminGet(admin, path, bearer(TOKEN));
        assert.equal(ok.status, path === '/nothing' ? 404 : 200, `${path} with the token: ${ok.text}`);
      }
      assert.equal((await firstTick(admin)).status, 401);
      missing++;
      assert.equal((await firstTick(admin, bearer('wrong-token-wrong-token'))).status, 401);
      wrong++;
      const events = await firstTick(admin, { authorization: `bearer ${TOKEN}` });
      assert.equal(events.status, 200, 'the scheme in any case');
      assert.equal(events.tick!.summary.apps, 1);

      // Counted (never logged): arr_admin_unauthorized_total by reason.
      const metrics = await adminGet(admin, '/metrics', bearer(TOKEN));
      assert.match(
        metrics.text,
        new RegExp(`^arr_admin_unauthorized_total\\{reason="missing"\\} ${missing}$`, 'm'),
      );
      assert.match(
        metrics.text,
        new RegExp(`^arr_admin_unauthorized_total\\{reason="wrong"\\} ${wrong}$`, 'm'),
      );
    });

    it('/healthz and the page files need no token; with a token any Host is answered', async () => {
      const health = await adminGet(admin, '/healthz');
      assert.equal(health.status, 200);
      assert.equal(health.text, 'ok\n');
      assert.equal((await adminGet(admin, '/healthz?verbose')).status, 200);
      for (const path of ['/', '/dashboard.js', '/dashboard/overview.js', '/dashboard.css'])
        assert.equal((await adminGet(admin, path)).status, 200, path);
      // The token guards the data; the Host check against DNS rebinding is not needed then.
      const named = await fetchVia(admin, `arr-node.example:${admin}`, false, {
        path: '/api/overview',
        headers: bearer(TOKEN),
      });
      assert.equal(named.status, 200);
      const namedNoToken = await fetchVia(admin, 'arr-node.example', false, { path: '/api/overview' });
      assert.equal(namedNoToken.status, 401);
    });

    it('the token never reaches the log', async () => {
      await fetchVia(arr.port, 'alpha.localhost', false, { headers: bearer(TOKEN) });
      await adminGet(admin, '/api/overview', bearer(`${TOKEN}-wrong`));
      assert.ok(arr.proc.output().includes('admin endpoint on'), arr.proc.output());
      assert.doesNotMatch(arr.proc.output(), new RegExp(TOKEN));
    });
  });
});

describe('the dashboard API with --mongo: the farm', { skip: mongoUnavailable() }, () => {
  let mongo: MongoServer;
  let arr: ArrUnderTest;
  let admin: number;
  const apps = [alpha(), beta()];

  before(async () => {
    mongo = await startMongo('dashboard');
    admin = await freePort();
    arr = await startArrWith(apps, {
      mongo: mongo.url,
      extraArgs: ['--admin', `127.0.0.1:${admin}`, '--poll', '0.5', '--heartbeat', '0.5'],
    });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    await mongo?.stop();
  });

  it("lists the nodes with their last beat and what each runs; other nodes' instances show under their app", async () => {
    // Another node of the farm, as its records would be: alive, running beta on port 8123.
    const client = new MongoClient(mongo.url);
    try {
      const far = new Date(Date.now() + 3_600_000);
      await client
        .db()
        .collection('nodes')
        .insertOne({ _id: '127.0.0.9' as unknown as ObjectId, beat: new Date(), expires: far });
    } finally {
      await client.close();
    }
    await claimInRegistry(mongo.url, apps[1]!._id!, { host: '127.0.0.9', port: 8123 });
    assert.equal((await fetchVia(arr.port, 'alpha.localhost', false)).status, 200);

    const o = await until('both nodes and their instances', async () => {
      const x = await getJson<Overview>(admin, '/api/overview');
      const self = x.nodes?.find((n) => n.self);
      return x.nodes?.length === 2 && self?.instances.length === 1 ? x : undefined;
    });
    assert.deepEqual(o.registry, { kind: 'mongo', reachable: true, problemCount: 0, problems: [] });
    const [self, other] = [o.nodes!.find((n) => n.self)!, o.nodes!.find((n) => !n.self)!];
    assert.equal(self.node, '127.0.0.1');
    assert.ok(self.alive);
    assert.ok(Date.now() - self.lastBeat < 60_000, 'a recent beat');
    assert.deepEqual(
      self.instances.map((i) => i.name),
      ['alpha'],
    );
    assert.equal(other.node, '127.0.0.9');
    assert.ok(other.alive);
    assert.deepEqual(other.instances, [{ app: String(apps[1]!._id), name: 'beta', port: 8123 }]);
    const b = o.apps.find((a) => a.name === 'beta')!;
    assert.deepEqual(
      b.instances.map((i) => ({ ...i, uptime: null })),
      [{ node: '127.0.0.9', port: 8123, pid: null, state: 'ready', uptime: null, local: false }],
    );
    const a = o.apps.find((x) => x.name === 'alpha')!;
    assert.equal(a.instances.length, 1, 'its own instance once, from the activator');
    assert.equal(a.instances[0]!.local, true);
  });

  it('an unreachable registry is shown as such, and recovers', async () => {
    await mongo.interrupt!();
    try {
      const o = await until(
        'the registry to show unreachable',
        async () => {
          const x = await getJson<Overview>(admin, '/api/overview');
          // The farm's records are read on demand, the apps by the poll: both fail in turn.
          return x.registry.reachable || x.farmError === undefined ? undefined : x;
        },
        { timeoutMs: 20_000, intervalMs: 200 },
      );
      assert.equal(typeof o.farmError, 'string');
      assert.ok(o.nodes!.length >= 1, 'the last nodes read are still shown');
      assert.equal(o.apps.length, 2, 'the apps served from memory');
      const tick = await firstTick(admin);
      assert.equal(tick.tick!.registry.reachable, false);
    } finally {
      await mongo.resume!();
    }
    await until(
      'the registry to be reachable again',
      async () => (await getJson<Overview>(admin, '/api/overview')).registry.reachable,
      { timeoutMs: 20_000, intervalMs: 200 },
    );
  });
});

describe('the dashboard shows what an operator asks first', () => {
  let arr: ArrUnderTest;
  let admin: number;

  before(async () => {
    admin = await freePort();
    const typo = {
      ...helloApp('typo', [{ host: 'typo.localhost', ssl: 'allowed' }]),
      name: 'typo',
      readyy: '/',
    };
    const rejected = {
      ...helloApp('rejected', [{ host: 'rejected.localhost', ssl: 'maybe' }]),
      name: 'rejected',
    };
    const unusable = {
      ...helloApp('unusable', [
        { host: 'unusable.localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/ws1-key.pem' },
      ]),
      name: 'unusable',
    };
    arr = await startArrWith([typo as AppDoc, rejected, unusable], {
      extraArgs: ['--admin', `127.0.0.1:${admin}`],
    });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('the registry problems: a rejected document, an unknown field, a certificate that does not fit its key', async () => {
    const o = await until('the start checks', async () => {
      const v = await getJson<Overview>(admin, '/api/overview');
      return v.registry.problemCount >= 3 ? v : undefined;
    });
    const text = o.registry.problems.join('\n');
    assert.match(text, /hosts\[0\]\.ssl: must be "allowed", "required" or "none"/);
    assert.match(text, /readyy: unknown field, ignored \(did you mean "ready"\?\)/);
    assert.match(
      text,
      /hosts\[0\]\.cert: "certs\/app1-cert\.pem" does not match its key "certs\/ws1-key\.pem"/,
    );
    assert.equal(o.registry.problemCount, 3, text);
    const { tick } = await firstTick(admin);
    assert.equal(tick!.registry.problemCount, 3);
  });

  it('a host whose own certificate cannot be used: why, and that the default one is served', async () => {
    assert.equal(await certificateFor(arr.sslport, 'unusable.localhost'), 'localhost');
    const o = await getJson<Overview>(admin, '/api/overview?q=unusable');
    const c = o.apps[0]!.hosts[0]!.certificate;
    assert.equal(c.source, 'own');
    assert.equal(c.expires, null);
    assert.match(c.problem ?? '', /does not match its key .*; the default certificate is served$/);
  });

  it('requests for hosts no app owns: counted per second', async () => {
    const load = async () => {
      for (let i = 0; i < 20; i++)
        assert.equal((await fetchVia(arr.port, 'nobody.localhost', false)).status, 404);
    };
    await until(
      'unknown hosts in the summary',
      async () => {
        await load();
        const o = await getJson<Overview>(admin, '/api/overview');
        return o.summary.unknownHosts > 0 ? o : undefined;
      },
      { timeoutMs: 15_000 },
    );
    const o = await getJson<Overview>(admin, '/api/overview');
    assert.equal(o.summary.requests, 0, 'not counted as any app');
  });
});
