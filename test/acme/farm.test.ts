import assert from 'node:assert/strict';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { MongoClient } from 'mongodb';
import { type ArrUnderTest, helloApp, provideApps, startArrWith } from '../support/arr.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { runningNlb } from '../support/nlb.js';
import {
  acmeFlags,
  handshake,
  type Pebble,
  pebbleUnavailable,
  startPebble,
  writeDnsHook,
} from '../support/pebble.js';
import { until } from '../support/poll.js';
import { freePorts } from '../support/ports.js';
import { stopAll } from '../support/proc.js';

const missing = pebbleUnavailable();
if (missing && process.env.CI === 'true') throw new Error(`the ACME tests need Pebble under CI: ${missing}`);

const HOSTS = ['farm1.test', 'farm2.test', 'farm3.test'];
/** A wildcard app too: one certificate (DNS-01 through a hook) for every name under it. */
const WILDCARD = '*.farm.test';
const NODES = ['127.0.0.2', '127.0.0.3', '127.0.0.4'];

describe('ACME in a farm: three nodes on FerretDB behind nlb', {
  skip: missing ?? mongoUnavailable(),
}, () => {
  let pebble: Pebble;
  let mongo: MongoServer;
  const nodes: ArrUnderTest[] = [];
  const dir = mkdtempSync(join(tmpdir(), 'arr-acme-farm-'));

  before(async () => {
    mongo = await startMongo('acme');
    const [httpPort, tlsPort] = await freePorts(2);
    pebble = await startPebble({ httpPort: httpPort!, tlsPort: tlsPort! });
    const hook = writeDnsHook(dir, pebble);
    await provideApps(
      [
        ...HOSTS.map((h) => helloApp(h.split('.')[0]!, [{ host: h, ssl: 'allowed' }])),
        helloApp('wild', [{ host: WILDCARD, ssl: 'allowed' }]),
      ],
      mongo.url,
    );
    // The CA reaches the farm through nlb, which picks any node for each validation; it runs
    // before the nodes, which order as soon as they start.
    const ports = await Promise.all(NODES.map((a) => freePorts(2, a)));
    await runningNlb([
      { port: httpPort!, backends: NODES.map((host, i) => ({ host, port: ports[i]![0]! })) },
      { port: tlsPort!, backends: NODES.map((host, i) => ({ host, port: ports[i]![1]! })) },
    ]);
    for (const [i, address] of NODES.entries()) {
      nodes.push(
        await startArrWith([], {
          mongo: mongo.url,
          keepApps: true,
          address,
          ports: ports[i] as [number, number],
          extraArgs: [...acmeFlags(pebble), '--acme-challenges', 'http-01', ...hook.flags, '--poll', '1'],
          env: { NODE_EXTRA_CA_CERTS: pebble.apiCaFile },
        }),
      );
    }
  });
  after(async () => {
    await stopAll();
    await pebble?.stop();
    await mongo?.stop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('one order per host (a wildcard too) for the whole farm; every node serves the same certificate', async () => {
    for (const host of [...HOSTS, 'a.farm.test']) {
      const serials = await until(
        `the same verified certificate for ${host} on every node`,
        async () => {
          const s = await Promise.all(
            nodes.map((n, i) => handshake(NODES[i]!, n.sslport, host, pebble.rootPem).then((h) => h.serial)),
          );
          return new Set(s).size === 1 ? s : undefined;
        },
        { timeoutMs: 60_000, intervalMs: 250 },
      );
      assert.equal(serials.length, 3);
    }
    const issued = pebble.proc.output().match(/Issued certificate serial/g) ?? [];
    assert.equal(issued.length, HOSTS.length + 1, pebble.proc.output().slice(-2000));
    for (const host of [...HOSTS, WILDCARD]) {
      const orders = nodes.flatMap(
        (n) =>
          n.proc
            .output()
            .match(new RegExp(`ordering a certificate for ${host.replace(/[.*]/g, '\\$&')}`, 'g')) ?? [],
      );
      assert.equal(
        orders.length,
        1,
        `one order for ${host}:\n${nodes.map((n) => n.proc.output()).join('\n---\n')}`,
      );
    }
    // The certificates, account and ticket keys are in arr's own collections next to `apps`.
    const client = new MongoClient(mongo.url);
    try {
      const certs = await client.db().collection('acme_certs').find({}).toArray();
      assert.deepEqual(certs.map((c) => c._id).sort(), [WILDCARD, ...HOSTS]);
      assert.equal(await client.db().collection('acme_leases').countDocuments(), 0, 'leases released');
      assert.equal(await client.db().collection('tls_ticket_keys').countDocuments(), 1);
    } finally {
      await client.close();
    }
  });

  it('a TLS session made on one node resumes on another (shared ticket keys)', async () => {
    const [a, b] = [nodes[0]!, nodes[1]!];
    const first = await handshake(NODES[0]!, a.sslport, 'farm1.test', pebble.rootPem);
    assert.equal(first.reused, false);
    assert.ok(first.ticket, 'a session ticket');
    const second = await handshake(NODES[1]!, b.sslport, 'farm1.test', pebble.rootPem, first.ticket);
    assert.equal(second.reused, true, 'resumed on the other node');
  });
});
