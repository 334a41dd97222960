import { Writable } from 'node:stream';
import { pino } from 'pino';
import { Activator, type ActivatorOptions } from '../../src/activation/activator.js';
import type { Target } from '../../src/activation/target.js';
import { parseAppsText } from '../../src/registry/apps-file.js';
import { FileRegistry } from '../../src/registry/file-registry.js';
import type { App } from '../../src/registry/types.js';
import { FakeClock, settle } from './fake-clock.js';
import { FakePorts, FakeSpawner } from './fake-spawner.js';

/** An app document of the apps file; `name` is also its `_id` and its host's first label. */
export function appDoc(name: string, extra: Record<string, unknown> = {}): Record<string, unknown> {
  return {
    _id: name,
    name,
    process: { executable: 'fake', args: [name] },
    hosts: [{ host: `${name}.localhost`, ssl: 'allowed' }],
    instances: 1,
    ...extra,
  };
}

/** One JSON line the activator logged. */
export interface Logged {
  level: number;
  msg: string;
  [key: string]: unknown;
}

/**
 * An Activator in this process over the file registry in memory, with a FakeClock, a
 * FakeSpawner and FakePorts: no process is started, no port bound, no file read.
 */
export class ActivatorHarness {
  readonly registry = new FileRegistry('(in memory)');
  readonly clock = new FakeClock();
  readonly spawner = new FakeSpawner();
  readonly ports = new FakePorts();
  readonly logged: Logged[] = [];
  readonly deployed: Array<{ app: string; result: string; detail?: string }> = [];
  /** Targets whose connections were told to go: the instance exited. */
  readonly gone: Target[] = [];
  /** Targets told to go once idle: the instance was replaced and drains. */
  readonly drained: Target[] = [];
  readonly starts: string[] = [];
  readonly activator: Activator;

  constructor(options: Partial<ActivatorOptions> = {}) {
    const sink = new Writable({
      write: (chunk: Buffer, _enc, done) => {
        for (const line of chunk.toString().split('\n'))
          if (line) this.logged.push(JSON.parse(line) as Logged);
        done();
      },
    });
    const log = pino({ level: 'debug', base: undefined }, sink);
    this.activator = new Activator(this.registry, this.ports, log, {
      advertise: '127.0.0.1',
      startTimeoutMs: 1_000,
      clock: this.clock,
      spawner: this.spawner,
      onInstanceGone: (t, graceful) => (graceful ? this.drained : this.gone).push(t),
      onStart: (app) => this.starts.push(app.id),
      events: { deployed: (app, result, detail) => this.deployed.push({ app: app.id, result, detail }) },
      ...options,
    });
  }

  /** Replaces the registry's apps (as a reload of the apps file does). */
  async setApps(...docs: Record<string, unknown>[]): Promise<void> {
    await this.registry.load(parseAppsText(JSON.stringify(docs)));
  }

  app(id: string): App {
    const app = this.registry.app(id);
    if (!app) throw new Error(`no app ${id}`);
    return app;
  }

  /** Lets what is under way settle (promises, without moving the clock). */
  settle(): Promise<void> {
    return settle();
  }

  /** The messages logged so far that match. */
  messages(re: RegExp): string[] {
    return this.logged.map((l) => l.msg).filter((m) => re.test(m));
  }

  /** Stops everything (the fake processes exit on SIGTERM). */
  async close(): Promise<void> {
    await this.activator.stopAll();
  }
}
