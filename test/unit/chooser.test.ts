import assert from 'node:assert/strict';
import { beforeEach, describe, it } from 'node:test';
import { pino } from 'pino';
import { InstanceChooser } from '../../src/activation/chooser.js';
import type { Activation, InstanceSource, Target } from '../../src/activation/target.js';
import { parseAppsText } from '../../src/registry/apps-file.js';
import { FileRegistry } from '../../src/registry/file-registry.js';
import type { App, InstanceAddress } from '../../src/registry/types.js';
import { appDoc } from '../support/activator-harness.js';

/** An InstanceSource whose answers the test sets. */
class Source implements InstanceSource {
  local = new Map<string, Target>();
  next: Activation | Error = { kind: 'remote', machines: [] };
  activations = 0;
  evicted: Array<{ appId: string; port?: number }> = [];

  localTarget(appId: string): Target | undefined {
    return this.local.get(appId);
  }

  async activate(): Promise<Activation> {
    this.activations++;
    if (this.next instanceof Error) throw this.next;
    return this.next;
  }

  evict(appId: string, _why: string, port?: number): void {
    this.evicted.push({ appId, port });
  }
}

const m = (host: string, port: number): InstanceAddress => ({ host, port });

/** An instance of this node (10.0.0.1) on `port`. */
const localTarget = (port: number): Target => ({
  appId: 'a',
  machine: m('10.0.0.1', port),
  host: '127.0.0.1',
  port,
  local: true,
});

describe('InstanceChooser (in process)', () => {
  let source: Source;
  let registry: FileRegistry;
  let chooser: InstanceChooser;
  let forgotten: Array<{ target: Target; graceful: boolean }>;
  let app: App;

  beforeEach(async () => {
    source = new Source();
    registry = new FileRegistry('(in memory)');
    await registry.load(parseAppsText(JSON.stringify([appDoc('a', { instances: 2 })])));
    app = registry.app('a') as App;
    forgotten = [];
    chooser = new InstanceChooser(
      source,
      registry,
      pino({ level: 'silent' }),
      '10.0.0.1',
      (target, graceful) => forgotten.push({ target, graceful }),
    );
  });

  it("picks this node's own instance first", () => {
    const local = localTarget(5000);
    source.local.set('a', local);
    chooser.updateRemote(new Map([['a', [m('10.0.0.2', 1), m('10.0.0.3', 2)]]]));
    assert.equal(chooser.pick(app), local);
  });

  it('takes the remote instances in turn once the app has its full count, else none', async () => {
    chooser.updateRemote(new Map([['a', [m('10.0.0.2', 1)]]]));
    assert.equal(chooser.pick(app), undefined, 'one of two: this node may start the second');
    chooser.updateRemote(new Map([['a', [m('10.0.0.2', 1), m('10.0.0.3', 2), m('10.0.0.1', 3)]]]));
    const picks = [chooser.pick(app), chooser.pick(app), chooser.pick(app)].map((t) => t?.machine.host);
    assert.deepEqual(picks, ['10.0.0.2', '10.0.0.3', '10.0.0.2'], "this node's own entry is never remote");
    const first = chooser.pick(app);
    chooser.updateRemote(new Map([['a', [m('10.0.0.2', 1), m('10.0.0.3', 2)]]]));
    assert.ok([chooser.pick(app), chooser.pick(app)].includes(first), 'known targets are kept');
    chooser.updateRemote(new Map());
    assert.equal(chooser.pick(app), undefined);
    assert.equal(forgotten.length, 2, "the app's remote targets are forgotten");
    assert.ok(forgotten.every((f) => f.graceful));
  });

  it('resolves through the source, and remembers remote instances it was given', async () => {
    source.next = { kind: 'remote', machines: [m('10.0.0.2', 1), m('10.0.0.3', 2)] };
    const target = await chooser.resolve(app);
    assert.equal(target.local, false);
    assert.ok(['10.0.0.2', '10.0.0.3'].includes(target.host));
    assert.ok(chooser.pick(app), 'picked from memory next time');
    assert.equal(source.activations, 1);
  });

  it('removes an unreachable remote instance, from memory and the registry', async () => {
    await registry.claim('a', m('10.0.0.2', 1));
    await registry.claim('a', m('10.0.0.3', 2));
    chooser.updateRemote(await registry.allAddresses());
    const bad = chooser.pick(app) as Target;
    chooser.unreachable(bad);
    assert.deepEqual(forgotten, [{ target: bad, graceful: false }]);
    // The next activation waits for the release, then the source is asked.
    source.next = { kind: 'local', target: localTarget(7) };
    await chooser.resolve(app);
    assert.deepEqual(
      (await registry.addressesOf('a')).map((x) => x.host),
      bad.host === '10.0.0.2' ? ['10.0.0.3'] : ['10.0.0.2'],
    );
  });

  it('asks the source to evict an unreachable local instance', () => {
    const local = localTarget(5000);
    chooser.unreachable(local);
    assert.deepEqual(source.evicted, [{ appId: 'a', port: 5000 }]);
  });
});
