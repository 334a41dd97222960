import assert from 'node:assert/strict';
import type { Socket } from 'node:net';
import { afterEach, test } from 'node:test';
import { proxyHeaderV1 } from '../../src/nlb/proxy-protocol.js';
import { local, removeTempDirs, runningNlb } from '../support/nlb.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';
import { closeAllServers, connected, readAll, tcpServer } from '../support/tcp.js';

afterEach(async () => {
  await stopAll();
  await closeAllServers();
  removeTempDirs();
});

/**
 * A backend that speaks PROXY protocol v1: it reads the header line first, then answers with
 * the header it got, a '|', and the rest of the bytes (the client's own data).
 */
function proxyAwareBackend(host = '127.0.0.1') {
  return tcpServer(
    (s: Socket) => {
      let buf = Buffer.alloc(0);
      let header: string | undefined;
      s.on('data', (d: Buffer) => {
        buf = Buffer.concat([buf, d]);
        if (header === undefined) {
          const eol = buf.indexOf('\r\n');
          if (eol < 0) return;
          header = buf.subarray(0, eol + 2).toString('latin1');
          buf = buf.subarray(eol + 2);
        }
      });
      s.on('end', () => s.end(`${header ?? 'no header'}|${buf.toString()}`));
    },
    { host, allowHalfOpen: true },
  );
}

async function ask(port: number, host: string): Promise<{ answer: string; sport: number }> {
  const client = await connected(port, host);
  const sport = client.localPort!;
  const answer = readAll(client);
  client.end('hello');
  return { answer: (await answer).toString(), sport };
}

test('proxyProtocol: the backend gets "PROXY TCP4 src dst sport dport\\r\\n" before the client bytes', async () => {
  const backend = await proxyAwareBackend();
  const [p1, p2] = await freePorts(2);
  await runningNlb([
    { port: p1!, host: '127.0.0.1', backends: local(backend.port), proxyProtocol: true },
    // Default listen address (dual stack): a v4 client's mapped address is sent as TCP4.
    { port: p2!, backends: local(backend.port), proxyProtocol: true },
  ]);
  for (const port of [p1!, p2!]) {
    const { answer, sport } = await ask(port, '127.0.0.1');
    assert.equal(answer, `PROXY TCP4 127.0.0.1 127.0.0.1 ${sport} ${port}\r\n|hello`);
  }
});

test('proxyProtocol over IPv6: "PROXY TCP6 ..."', async () => {
  const backend = await proxyAwareBackend('::1');
  const [port] = await freePorts(1, '::1');
  await runningNlb([
    { port: port!, host: '::1', backends: [{ host: '::1', port: backend.port }], proxyProtocol: true },
  ]);
  const { answer, sport } = await ask(port!, '::1');
  assert.equal(answer, `PROXY TCP6 ::1 ::1 ${sport} ${port}\r\n|hello`);
});

test('without proxyProtocol the backend gets the client bytes only', async () => {
  const backend = await proxyAwareBackend();
  const [port] = await freePorts(1);
  await runningNlb([{ port: port!, backends: local(backend.port) }]);
  const { answer } = await ask(port!, '127.0.0.1');
  assert.equal(answer, 'no header|hello');
});

test('proxyHeaderV1 formats', () => {
  assert.equal(proxyHeaderV1('10.0.0.1', '10.0.0.2', 5000, 80), 'PROXY TCP4 10.0.0.1 10.0.0.2 5000 80\r\n');
  assert.equal(
    proxyHeaderV1('::ffff:10.0.0.1', '::ffff:10.0.0.2', 5000, 80),
    'PROXY TCP4 10.0.0.1 10.0.0.2 5000 80\r\n',
  );
  assert.equal(
    proxyHeaderV1('2001:db8::1', '2001:db8::2', 5000, 443),
    'PROXY TCP6 2001:db8::1 2001:db8::2 5000 443\r\n',
  );
  assert.equal(proxyHeaderV1(undefined, '10.0.0.2', undefined, 80), 'PROXY UNKNOWN\r\n');
  assert.equal(proxyHeaderV1('10.0.0.1', '2001:db8::2', 5000, 80), 'PROXY UNKNOWN\r\n');
});
