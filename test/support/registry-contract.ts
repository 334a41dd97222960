import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { type Document, ObjectId } from 'mongodb';
import { type Registry, UnknownAppError } from '../../src/registry/registry.js';
import type { InstanceAddress } from '../../src/registry/types.js';

/** One registry over a store seeded with some documents, and ways to look behind it. */
export interface RegistryFixture {
  /** Not loaded yet. */
  registry: Registry;
  /**
   * The registries (not loaded) that share the 20 racing claims: several with their own client
   * connections where the store makes that meaningful, or just `registry`.
   */
  racers(): Registry[];
  /** The app's `machines` as the store has them, read without the registry. */
  stored(appId: string): Promise<InstanceAddress[]>;
  /** Adds or replaces one document in the store (by `_id`). */
  put(doc: Document): Promise<void>;
  /** Closes every registry it made and removes what it created. */
  close(): Promise<void>;
}

export type MakeRegistry = (docs: Document[]) => Promise<RegistryFixture>;

export interface ContractOptions {
  /** Whether problems carry the line of the document (file registry). */
  lines?: boolean;
}

export const APP1 = new ObjectId('65a0000000000000000000a1');
export const APP1_ID = APP1.toHexString();

/** The documents every contract test starts from. */
export function contractDocs(): Document[] {
  return [
    {
      _id: APP1,
      process: { executable: 'node', args: ['samples/app1/server.js'] },
      hosts: [
        { host: 'App1.Localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/app1-key.pem' },
        { host: 'app1.example.test.', ssl: 'none' },
      ],
      instances: 2,
      machines: [],
    },
    // No `instances`: counts as 1. The seed's spelling of "required".
    {
      _id: 'app2',
      process: { executable: 'node', args: [] },
      hosts: [{ host: 'app2.test', ssl: 'require' }],
    },
    {
      _id: 'bad-ssl',
      process: { executable: 'node', args: [] },
      hosts: [{ host: 'bad.test', ssl: 'maybe' }],
      instances: 1,
    },
    {
      _id: 'race',
      process: { executable: 'node', args: ['race.js'] },
      hosts: [{ host: 'race.test', ssl: 'none' }],
      instances: 3,
    },
  ];
}

const m = (host: string, port: number): InstanceAddress => ({ host, port });
const key = (x: InstanceAddress) => `${x.host}:${x.port}`;
const keys = (list: InstanceAddress[]) => list.map(key).sort();

/**
 * The behaviour every `Registry` must have, run against one implementation. Each test gets a
 * store of its own from `make` and closes it at the end.
 */
export function registryContract(name: string, make: MakeRegistry, options: ContractOptions = {}): void {
  async function withFixture(
    fn: (f: RegistryFixture) => Promise<void>,
    docs = contractDocs(),
  ): Promise<void> {
    const f = await make(docs);
    try {
      await fn(f);
    } finally {
      await f.close();
    }
  }

  describe(`Registry contract: ${name}`, () => {
    it('load counts the valid apps and reports the bad document by _id and field', () =>
      withFixture(async (f) => {
        const report = await f.registry.load();
        assert.equal(report.apps, 3);
        const bad = report.problems.filter((p) => p.id === 'bad-ssl');
        assert.equal(bad.length, 1, JSON.stringify(report.problems));
        assert.equal(bad[0]?.field, 'hosts[0].ssl');
        assert.match(bad[0]?.message ?? '', /maybe/);
        if (options.lines) assert.equal(bad[0]?.line, 3);
        // Only the bad document is reported, and it is not served.
        assert.equal(report.problems.length, 1, JSON.stringify(report.problems));
        assert.equal(f.registry.route('bad.test'), undefined);
        assert.equal(f.registry.app('bad-ssl'), undefined);
        assert.deepEqual([...f.registry.apps()].map((a) => a.id).sort(), [APP1_ID, 'app2', 'race'].sort());
      }));

    it('route finds the app of a (normalised) host name, and nothing for unknown names', () =>
      withFixture(async (f) => {
        await f.registry.load();
        const r1 = f.registry.route('app1.localhost');
        assert.equal(r1?.app.id, APP1_ID);
        assert.ok(r1?.app.rawId instanceof ObjectId, 'rawId keeps the ObjectId');
        assert.equal(r1?.rule.ssl, 'allowed');
        assert.deepEqual(r1?.app.process, { executable: 'node', args: ['samples/app1/server.js'] });
        assert.equal(r1?.app.instances, 2);
        const r2 = f.registry.route('app1.example.test');
        assert.equal(r2?.app.id, APP1_ID);
        assert.equal(r2?.rule.ssl, 'none');
        const r3 = f.registry.route('app2.test');
        assert.equal(r3?.app.id, 'app2');
        assert.equal(r3?.rule.ssl, 'required', '"require" is normalised');
        assert.equal(r3?.app.instances, 1, 'a document without instances counts as 1');
        assert.equal(f.registry.route('nobody.test'), undefined);
        assert.equal(f.registry.app(APP1_ID)?.id, APP1_ID);
      }));

    it('tlsRoutes lists exactly the hosts with both cert and key', () =>
      withFixture(async (f) => {
        await f.registry.load();
        const tls = [...f.registry.tlsRoutes()];
        assert.deepEqual(
          tls.map((r) => [r.rule.host, r.rule.cert, r.rule.key, r.app.id]),
          [['app1.localhost', 'certs/app1-cert.pem', 'certs/app1-key.pem', APP1_ID]],
        );
      }));

    it('claim grants up to `instances`, then refuses and returns the current machines', () =>
      withFixture(async (f) => {
        await f.registry.load();
        assert.deepEqual(await f.registry.addressesOf(APP1_ID), []);
        const c1 = await f.registry.claim(APP1_ID, m('10.0.0.1', 8001));
        assert.equal(c1.granted, true);
        assert.deepEqual(keys(c1.machines), ['10.0.0.1:8001']);
        const c2 = await f.registry.claim(APP1_ID, m('10.0.0.2', 8002));
        assert.equal(c2.granted, true);
        assert.deepEqual(keys(c2.machines), ['10.0.0.1:8001', '10.0.0.2:8002']);
        const c3 = await f.registry.claim(APP1_ID, m('10.0.0.3', 8003));
        assert.equal(c3.granted, false);
        assert.deepEqual(keys(c3.machines), ['10.0.0.1:8001', '10.0.0.2:8002']);
        assert.deepEqual(keys(await f.registry.addressesOf(APP1_ID)), ['10.0.0.1:8001', '10.0.0.2:8002']);
        assert.deepEqual(keys(await f.stored(APP1_ID)), ['10.0.0.1:8001', '10.0.0.2:8002']);
      }));

    it('a document without `instances` gets one instance', () =>
      withFixture(async (f) => {
        await f.registry.load();
        assert.equal((await f.registry.claim('app2', m('10.0.0.1', 8001))).granted, true);
        const refused = await f.registry.claim('app2', m('10.0.0.2', 8002));
        assert.equal(refused.granted, false);
        assert.deepEqual(keys(refused.machines), ['10.0.0.1:8001']);
      }));

    it('release frees a slot, and the next claim gets it', () =>
      withFixture(async (f) => {
        await f.registry.load();
        await f.registry.claim(APP1_ID, m('10.0.0.1', 8001));
        await f.registry.claim(APP1_ID, m('10.0.0.2', 8002));
        assert.equal((await f.registry.claim(APP1_ID, m('10.0.0.3', 8003))).granted, false);
        await f.registry.release(APP1_ID, m('10.0.0.1', 8001));
        assert.deepEqual(keys(await f.registry.addressesOf(APP1_ID)), ['10.0.0.2:8002']);
        // Releasing what is not there is harmless.
        await f.registry.release(APP1_ID, m('10.0.0.1', 8001));
        await f.registry.release(APP1_ID, m('10.0.0.2', 9999));
        assert.deepEqual(keys(await f.stored(APP1_ID)), ['10.0.0.2:8002']);
        const again = await f.registry.claim(APP1_ID, m('10.0.0.3', 8003));
        assert.equal(again.granted, true);
        assert.deepEqual(keys(again.machines), ['10.0.0.2:8002', '10.0.0.3:8003']);
      }));

    it('releaseMachine removes every entry of one host across apps and returns the count', () =>
      withFixture(async (f) => {
        await f.registry.load();
        for (const [id, machine] of [
          [APP1_ID, m('10.0.0.1', 8001)],
          [APP1_ID, m('10.0.0.2', 8002)],
          ['app2', m('10.0.0.1', 8003)],
          ['race', m('10.0.0.1', 8004)],
          ['race', m('10.0.0.1', 8005)],
          ['race', m('10.0.0.2', 8006)],
        ] as const)
          assert.equal((await f.registry.claim(id, machine)).granted, true, `${id} ${key(machine)}`);
        assert.equal(await f.registry.releaseMachine('10.0.0.1'), 4);
        assert.deepEqual(keys(await f.registry.addressesOf(APP1_ID)), ['10.0.0.2:8002']);
        assert.deepEqual(keys(await f.registry.addressesOf('app2')), []);
        assert.deepEqual(keys(await f.registry.addressesOf('race')), ['10.0.0.2:8006']);
        assert.deepEqual(keys(await f.stored('race')), ['10.0.0.2:8006']);
        assert.equal(await f.registry.releaseMachine('10.0.0.1'), 0);
        assert.equal(await f.registry.releaseMachine('10.0.0.9'), 0);
      }));

    it('claim on an unknown or rejected app fails with UnknownAppError', () =>
      withFixture(async (f) => {
        await f.registry.load();
        await assert.rejects(f.registry.claim('bad-ssl', m('10.0.0.1', 8001)), UnknownAppError);
        await assert.rejects(f.registry.claim('nope', m('10.0.0.1', 8001)), UnknownAppError);
      }));

    it('load replaces the index with what the store holds now', () =>
      withFixture(async (f) => {
        await f.registry.load();
        assert.equal(f.registry.route('late.test'), undefined);
        await f.put({
          _id: 'late',
          process: { executable: 'node' },
          hosts: [{ host: 'late.test', ssl: 'none' }],
        });
        await f.put({
          _id: 'bad-ssl',
          process: { executable: 'node' },
          hosts: [{ host: 'bad.test', ssl: 'none' }],
        });
        const report = await f.registry.load();
        assert.equal(report.apps, 5);
        assert.deepEqual(report.problems, []);
        assert.equal(f.registry.route('late.test')?.app.id, 'late');
        assert.deepEqual(f.registry.route('late.test')?.app.process.args, []);
        assert.equal(f.registry.route('bad.test')?.app.id, 'bad-ssl');
      }));

    it('the race: 20 concurrent claims for instances: 3 grant exactly 3, ten rounds', (t) =>
      withFixture(async (f) => {
        const regs = f.racers();
        t.diagnostic(`20 claims spread over ${regs.length} registr${regs.length > 1 ? 'ies' : 'y'}`);
        await claimRace(regs, 'race', 3, (id) => f.stored(id));
      }));
  });
}

/**
 * 20 claims at once for `appId` (whose cap is `cap`), spread round-robin over `regs` (loaded
 * here): exactly `cap` are granted, the store holds exactly those, distinct; every refusal shows
 * them. Then everything is released and it starts again, `rounds` times.
 */
export async function claimRace(
  regs: Registry[],
  appId: string,
  cap: number,
  stored: (appId: string) => Promise<InstanceAddress[]>,
  rounds = 10,
): Promise<void> {
  for (const r of regs) await r.load();
  const pick = (i: number) => regs[i % regs.length] as Registry;
  for (let round = 0; round < rounds; round++) {
    const asked = Array.from({ length: 20 }, (_, i) => m(`10.${round}.0.${i}`, 8000 + i));
    const results = await Promise.all(asked.map((machine, i) => pick(i).claim(appId, machine)));
    const granted = asked.filter((_, i) => results[i]?.granted);
    assert.equal(granted.length, cap, `round ${round}: ${granted.length} granted`);
    const now = await stored(appId);
    assert.equal(now.length, cap, `round ${round}: stored ${JSON.stringify(now)}`);
    assert.equal(new Set(now.map(key)).size, cap, 'distinct entries');
    assert.deepEqual(keys(now), keys(granted), 'the stored entries are the granted claims');
    for (const r of results) {
      if (!r.granted) assert.deepEqual(keys(r.machines), keys(granted), 'a refusal shows the winners');
    }
    for (const r of regs) assert.deepEqual(keys(await r.addressesOf(appId)), keys(granted));
    for (const [i, machine] of now.entries()) await pick(i).release(appId, machine);
    assert.deepEqual(await stored(appId), [], `round ${round}: reset`);
  }
}
