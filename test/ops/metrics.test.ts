import assert from 'node:assert/strict';
import { type IncomingMessage, request } from 'node:http';
import { after, before, describe, it } from 'node:test';
import { type Activation, ActivationError } from '../../src/activation/target.js';
import { parseAdminAddress } from '../../src/cli/options.js';
import { isLoopback } from '../../src/ops/admin/admin-server.js';
import { InstrumentedRegistry } from '../../src/ops/metrics/instrumented-registry.js';
import { Metrics } from '../../src/ops/metrics/metrics.js';
import type { Registry } from '../../src/registry/registry.js';
import type { App } from '../../src/registry/types.js';
import {
  type AppDoc,
  type ArrUnderTest,
  fetchVia,
  helloApp,
  type Reply,
  readReply,
  startArrWith,
} from '../support/arr.js';
import { parseExposition, type Sample, seriesValue } from '../support/exposition.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { runArr, stopAll } from '../support/proc.js';
import { inlineApp, openWs } from '../support/wsclient.js';

/**
 * Dies on GET /die before answering (arr answers 502); breaks off its chunked answer to GET
 * /cut; otherwise "mortal"; WebSockets echo.
 */
const MORTAL_APP = `
import http from 'node:http';
import { WebSocketServer } from 'ws';
const server = http.createServer((req, res) => {
  if (req.url === '/die') process.exit(1);
  if (req.url === '/cut') {
    res.write('the start of an answer that never ends');
    return setTimeout(() => req.socket.destroy(), 20);
  }
  res.end('mortal (pid ' + process.pid + ')\\n');
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => ws.on('message', (m, binary) => ws.send(m, { binary })));
server.listen(Number(process.env.PORT));
`;

const named = (name: string, doc: AppDoc): AppDoc => ({ ...doc, name });

const apps = (): AppDoc[] => [
  named('alpha', helloApp('alpha', [{ host: 'alpha.localhost', ssl: 'allowed' }])),
  named('beta', helloApp('beta', [{ host: 'beta.localhost', ssl: 'allowed' }])),
  named('mortal', inlineApp(MORTAL_APP, [{ host: 'mortal.localhost', ssl: 'allowed' }])),
  named('broken', {
    process: { executable: '/nonexistent/arr-test-program' },
    hosts: [{ host: 'broken.localhost', ssl: 'allowed' }],
  }),
];

/** A plain GET to the admin endpoint. */
function adminGet(port: number, path: string, method = 'GET'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = request({ host: '127.0.0.1', port, path, method, agent: false }, (res) =>
      readReply(res).then(resolve, reject),
    );
    req.on('error', reject);
    req.end();
  });
}

async function scrape(port: number): Promise<Sample[]> {
  const r = await adminGet(port, '/metrics');
  assert.equal(r.status, 200);
  assert.match(String(r.headers['content-type']), /^text\/plain; version=0\.0\.4/);
  return parseExposition(r.text);
}

/** Scrapes until every expected value is there (counts are recorded when an answer is done). */
async function scrapeUntil(
  port: number,
  expected: [name: string, labels: Record<string, string>, value: number][],
): Promise<Sample[]> {
  let last: Sample[] = [];
  try {
    return await until(
      'the expected metrics',
      async () => {
        last = await scrape(port);
        return expected.every(([n, l, v]) => seriesValue(last, n, l) === v) && last;
      },
      { timeoutMs: 5_000 },
    );
  } catch (err) {
    const got = expected.map(
      ([n, l, v]) => `${n}${JSON.stringify(l)}: want ${v}, got ${seriesValue(last, n, l)}`,
    );
    throw new Error(`${(err as Error).message}\n${got.join('\n')}`);
  }
}

describe('metrics and health on --admin', () => {
  let arr: ArrUnderTest;
  let admin: number;
  before(async () => {
    admin = await freePort();
    arr = await startArrWith(apps(), { extraArgs: ['--admin', `127.0.0.1:${admin}`] });
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it('counts requests, WebSockets, activations and proxy errors by app', async () => {
    for (let i = 0; i < 3; i++)
      assert.equal((await fetchVia(arr.port, 'alpha.localhost', false)).status, 200);
    for (let i = 0; i < 2; i++)
      assert.equal((await fetchVia(arr.sslport, 'beta.localhost', true)).status, 200);
    assert.equal((await fetchVia(arr.port, 'unknown.localhost', false)).status, 404);
    assert.equal((await fetchVia(arr.port, '', false)).status, 400);
    assert.equal((await fetchVia(arr.port, 'broken.localhost', false)).status, 502);

    const ws = await openWs(arr.port, 'mortal.localhost', false);
    ws.ws.send('echo');
    assert.equal((await ws.message(0)).data.toString(), 'echo');
    let samples = await scrapeUntil(admin, [['arr_websockets_open', { app: 'mortal' }, 1]]);
    assert.equal(seriesValue(samples, 'arr_websocket_upgrades_total', { app: 'mortal', status: '101' }), 1);
    ws.ws.close(1000);
    await ws.closed;

    const died = await fetchVia(arr.port, 'mortal.localhost', false, { path: '/die' });
    assert.equal(died.status, 502, died.text);

    samples = await scrapeUntil(admin, [
      ['arr_requests_total', { app: 'alpha', status: '200' }, 3],
      ['arr_requests_total', { app: 'beta', status: '200' }, 2],
      ['arr_requests_total', { app: '-', status: '404' }, 1],
      ['arr_requests_total', { app: '-', status: '400' }, 1],
      ['arr_requests_total', { app: 'broken', status: '502' }, 1],
      ['arr_requests_total', { app: 'mortal', status: '502' }, 1],
      ['arr_request_duration_seconds_count', { app: 'alpha' }, 3],
      ['arr_request_duration_seconds_bucket', { app: 'alpha', le: '+Inf' }, 3],
      ['arr_request_duration_seconds_count', { app: 'beta' }, 2],
      ['arr_websockets_open', { app: 'mortal' }, 0],
      ['arr_websocket_upgrades_total', { app: 'mortal', status: '101' }, 1],
      ['arr_activations_total', { app: 'alpha', result: 'started' }, 1],
      ['arr_activations_total', { app: 'beta', result: 'started' }, 1],
      ['arr_activations_total', { app: 'mortal', result: 'started' }, 1],
      ['arr_activations_total', { app: 'broken', result: 'failed' }, 1],
      ['arr_activation_duration_seconds_count', { app: 'alpha' }, 1],
      ['arr_proxy_errors_total', { app: 'mortal', kind: 'failed' }, 1],
      // mortal is gone: alpha and beta run.
      ['arr_instances_running', {}, 2],
      ['arr_registry_errors_total', { operation: 'claim' }, 0],
    ]);

    // The buckets suit a proxy: 1 ms to 10 s.
    const les = samples
      .filter((s) => s.name === 'arr_request_duration_seconds_bucket' && s.labels.app === 'alpha')
      .map((s) => s.labels.le);
    assert.equal(les[0], '0.001');
    assert.ok(les.includes('10') && les.at(-1) === '+Inf', les.join(' '));
    // A 1 ms request is not possible here: the first one waited for alpha to start.
    const slow = seriesValue(samples, 'arr_request_duration_seconds_bucket', { app: 'alpha', le: '0.001' });
    assert.ok(slow !== undefined && slow < 3);

    // Labels name registry apps only, never what a client sent as Host.
    const text = samples.map((s) => JSON.stringify(s.labels)).join('\n');
    assert.doesNotMatch(text, /unknown\.localhost/);
    // prom-client's default process and Node.js metrics are there too.
    assert.ok(seriesValue(samples, 'process_cpu_user_seconds_total') !== undefined);
    assert.ok(samples.some((s) => s.name === 'nodejs_eventloop_lag_seconds'));
  });

  it('counts an answer the instance broke off as what the client got: no complete answer (0)', async () => {
    const before =
      seriesValue(await scrape(admin), 'arr_requests_total', { app: 'mortal', status: '200' }) ?? 0;
    await assert.rejects(fetchVia(arr.port, 'mortal.localhost', false, { path: '/cut' }));
    const samples = await scrapeUntil(admin, [['arr_requests_total', { app: 'mortal', status: '0' }, 1]]);
    assert.equal(seriesValue(samples, 'arr_requests_total', { app: 'mortal', status: '200' }) ?? 0, before);
  });

  it('answers /healthz, plain and verbose; 404 for unknown paths', async () => {
    const plain = await adminGet(admin, '/healthz');
    assert.equal(plain.status, 200);
    assert.equal(plain.text, 'ok\n');
    assert.match(String(plain.headers['content-type']), /^text\/plain/);

    const verbose = await adminGet(admin, '/healthz?verbose');
    assert.equal(verbose.status, 200);
    const report = JSON.parse(verbose.text) as Record<string, unknown>;
    assert.deepEqual(Object.keys(report).sort(), ['apps', 'instances', 'registry', 'status']);
    assert.equal(report.status, 'ok');
    assert.equal(report.apps, 4);
    assert.equal(typeof report.instances, 'number');
    assert.equal(report.registry, 'ok');

    assert.equal((await adminGet(admin, '/nothing')).status, 404);
    assert.equal((await adminGet(admin, '/')).status, 200, 'the dashboard');
    assert.equal((await adminGet(admin, '/metrics', 'POST')).status, 405);
    const head = await adminGet(admin, '/healthz', 'HEAD');
    assert.equal(head.status, 200);
    assert.equal(head.body.length, 0);
  });

  it('serves none of it on the public ports', async () => {
    for (const path of ['/metrics', '/healthz']) {
      for (const secure of [false, true]) {
        const port = secure ? arr.sslport : arr.port;
        const unknown = await fetchVia(port, 'localhost', secure, { path });
        assert.equal(unknown.status, 404, `${path} with Host localhost: ${unknown.text}`);
        assert.match(unknown.text, /^404 Not Found: no application serves localhost\n$/);
        const app = await fetchVia(port, 'alpha.localhost', secure, { path });
        assert.equal(app.status, 200);
        assert.match(app.text, /^hello from alpha/, `${path} reaches the app, not arr`);
        assert.doesNotMatch(app.text, /arr_|process_cpu/);
      }
      assert.equal((await fetchVia(arr.port, '', false, { path })).status, 400);
    }
  });

  it('answers /healthz 503 once arr stops', async () => {
    // An answer in the middle of its body (the client reads nothing meanwhile) holds the stop
    // open: meanwhile the endpoint says it is stopping.
    const n = 64 * 1024 * 1024;
    const big = await new Promise<IncomingMessage>((resolve, reject) => {
      const req = request(
        { host: '127.0.0.1', port: arr.port, path: `/bytes?n=${n}`, headers: { host: 'alpha.localhost' } },
        resolve,
      );
      req.on('error', reject);
      req.end();
    });
    big.pause();
    const stopped = arr.stop();
    await arr.proc.waitFor('arr stopping');
    const during = await adminGet(admin, '/healthz');
    assert.equal(during.status, 503);
    assert.equal(during.text, 'stopping\n');
    const verbose = JSON.parse((await adminGet(admin, '/healthz?verbose')).text) as { status: string };
    assert.equal(verbose.status, 'stopping');

    let received = 0;
    big.on('data', (c: Buffer) => {
      received += c.length;
    });
    big.resume();
    await new Promise((r) => big.once('end', r));
    assert.equal(big.statusCode, 200);
    assert.equal(received, n, 'the answer in flight is finished');
    assert.equal(await stopped, 0);
    await assert.rejects(adminGet(admin, '/healthz'), 'the endpoint is closed with arr');
  });
});

describe('--admin', () => {
  after(stopAll);

  it('is refused with a bad value, naming the option', async () => {
    for (const bad of ['nonsense', '127.0.0.1:70000', 'example.com:9090', '1.2.3.4:', ':9090', '[::1]']) {
      const r = await runArr(['--admin', bad, '-p', '0', '-s', '0']);
      assert.equal(r.code, 2, `--admin ${bad}: ${r.output}`);
      assert.match(r.output, /--admin must be/, bad);
    }
    const same = await runArr(['--admin', '31999', '-p', '31999', '-s', '0']);
    assert.equal(same.code, 2, same.output);
    assert.match(same.output, /--admin must use a port other than --port/);
  });

  it('refuses to start on an address other than loopback without --admin-token (exit 2), before it binds anything', async () => {
    // 192.0.2.1 (TEST-NET-1) is on no interface here: had arr tried to bind it, it would have
    // failed with EADDRNOTAVAIL (exit 1), not this usage error.
    for (const address of ['192.0.2.1:0', '0.0.0.0:0', '[::]:0']) {
      const r = await runArr(['--admin', address, '-p', '0', '-s', '0', '--log-level', 'info']);
      assert.equal(r.code, 2, `--admin ${address}: ${r.output}`);
      assert.match(
        r.output,
        /--admin .* is not a loopback address: give --admin-token TOKEN \(or ARR_ADMIN_TOKEN\)/,
      );
      assert.doesNotMatch(r.output, /listening|admin endpoint|registry:/, 'nothing was started');
    }
  });

  it('is off by default: no endpoint, no admin line', async () => {
    const arr = await startArrWith(apps().slice(0, 1));
    try {
      assert.doesNotMatch(arr.proc.output(), /admin endpoint/);
    } finally {
      await arr.stop();
    }
  });

  it('parses PORT, ADDR:PORT and [IPv6]:PORT', () => {
    assert.deepEqual(parseAdminAddress('9090'), { host: '127.0.0.1', port: 9090 });
    assert.deepEqual(parseAdminAddress('127.0.0.5:9090'), { host: '127.0.0.5', port: 9090 });
    assert.deepEqual(parseAdminAddress('localhost:0'), { host: 'localhost', port: 0 });
    assert.deepEqual(parseAdminAddress('[::1]:9090'), { host: '::1', port: 9090 });
    assert.throws(() => parseAdminAddress('::1:9090'), /--admin must be/);
    assert.ok(isLoopback('127.0.0.1') && isLoopback('::1') && isLoopback('localhost'));
    assert.ok(!isLoopback('0.0.0.0') && !isLoopback('::') && !isLoopback('10.0.0.1'));
  });
});

describe('Metrics', () => {
  it('counts registry failures by operation, and whether the last load failed', async () => {
    let fail = true;
    const attempt = async () => {
      if (fail) throw new Error('down');
      return 'ok';
    };
    const metrics = new Metrics();
    const inner = { kind: 'file', load: attempt, claim: attempt, route: () => undefined };
    const fake = new InstrumentedRegistry(inner as unknown as Registry, metrics) as unknown as typeof inner;
    assert.ok(metrics.registryReachable);
    await assert.rejects(fake.load(), /down/);
    await assert.rejects(fake.claim(), /down/);
    await assert.rejects(fake.claim(), /down/);
    assert.ok(!metrics.registryReachable);
    fail = false;
    assert.equal(await fake.load(), 'ok');
    assert.ok(metrics.registryReachable);
    const samples = parseExposition(await metrics.registry.metrics());
    assert.equal(seriesValue(samples, 'arr_registry_errors_total', { operation: 'load' }), 1);
    assert.equal(seriesValue(samples, 'arr_registry_errors_total', { operation: 'claim' }), 2);
    assert.equal(seriesValue(samples, 'arr_registry_errors_total', { operation: 'beat' }), undefined);
  });

  it('tells activation results apart', async () => {
    const metrics = new Metrics();
    const app = { name: 'x' } as App;
    const started = Promise.resolve({ kind: 'local' } as Activation);
    const remote = Promise.resolve({ kind: 'remote', machines: [] } as Activation);
    const timeout = Promise.reject(new ActivationError('timeout', 'late', 'late'));
    const backoff = Promise.reject(new ActivationError('unavailable', 'later', 'later'));
    for (const p of [started, remote, timeout, backoff]) metrics.activationStarted(app, p);
    await Promise.allSettled([started, remote, timeout, backoff]);
    await new Promise((r) => setImmediate(r));
    const samples = parseExposition(await metrics.registry.metrics());
    for (const result of ['started', 'remote', 'timeout', 'unavailable'])
      assert.equal(seriesValue(samples, 'arr_activations_total', { app: 'x', result }), 1, result);
    assert.equal(seriesValue(samples, 'arr_activation_duration_seconds_count', { app: 'x' }), 1);
  });
});
