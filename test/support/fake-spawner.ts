import type { ChildProcess } from 'node:child_process';
import { EventEmitter } from 'node:events';
import type { Spawner } from '../../src/activation/launcher.js';
import type { Readiness } from '../../src/activation/readiness.js';
import type { SpawnedProcess } from '../../src/activation/spawn.js';
import type { App } from '../../src/registry/types.js';

type Exit = Awaited<SpawnedProcess['exited']>;

/** One process the fake spawner "started": a test decides when it is ready and when it exits. */
export class FakeProcess {
  readonly child = new EventEmitter();
  readonly signals: NodeJS.Signals[] = [];
  readonly proc: SpawnedProcess;
  private exit!: (e: Exit) => void;
  private readyNow!: (r: Readiness) => void;
  readonly readiness: Promise<Readiness>;
  /** Whether SIGTERM makes it exit (a program that ignores it waits for SIGKILL). */
  exitsOnTerm = true;
  hasExited = false;

  constructor(
    readonly app: App,
    readonly port: number,
    pid: number,
  ) {
    const exited = new Promise<Exit>((r) => {
      this.exit = r;
    });
    this.readiness = new Promise<Readiness>((r) => {
      this.readyNow = r;
    });
    this.proc = {
      child: this.child as unknown as ChildProcess,
      pid,
      recent: [],
      token: `fake-${pid}`,
      exited,
    };
  }

  get pid(): number {
    return this.proc.pid;
  }

  /** It listens now (readiness answers 'ready'). */
  ready(): void {
    this.readyNow('ready');
  }

  /** It is not ready in time (readiness answers 'timeout'). */
  timesOut(): void {
    this.readyNow('timeout');
  }

  /** It exits, with a code or a signal. */
  exits(code: number | null = 0, signal: NodeJS.Signals | null = null): void {
    if (this.hasExited) return;
    this.hasExited = true;
    this.readyNow('aborted');
    this.exit({ code, signal });
    // As a real child's pipes close after its exit is seen.
    setImmediate(() => this.child.emit('close'));
  }

  /** What the spawner's signal() does to it. */
  signal(signal: NodeJS.Signals): void {
    this.signals.push(signal);
    if (this.hasExited) return;
    if (signal === 'SIGKILL' || (signal === 'SIGTERM' && this.exitsOnTerm)) this.exits(null, signal);
  }
}

/**
 * A Spawner that starts no process: each spawn makes a FakeProcess (pids from 1,000,000 up, so
 * that no signal could reach a real process even by mistake: signal() never calls kill).
 * `autoReady`: every process is ready as soon as it is spawned.
 */
export class FakeSpawner implements Spawner {
  readonly started: FakeProcess[] = [];
  private nextPid = 1_000_000;
  /** Makes the next spawn throw, as spawn() does for a bad executable. */
  refuseNext?: NodeJS.ErrnoException;
  /** Called at each spawn (before readiness is asked). */
  onSpawn?: (p: FakeProcess) => void;

  constructor(public autoReady = true) {}

  spawn(app: App, port: number): SpawnedProcess {
    if (this.refuseNext) {
      const err = this.refuseNext;
      this.refuseNext = undefined;
      throw err;
    }
    const p = new FakeProcess(app, port, this.nextPid++);
    this.started.push(p);
    if (this.autoReady) p.ready();
    this.onSpawn?.(p);
    return p.proc;
  }

  signal(pid: number, signal: NodeJS.Signals): void {
    this.byPid(pid)?.signal(signal);
  }

  ready(port: number): Promise<Readiness> {
    const p = this.started.find((s) => s.port === port && !s.hasExited);
    if (!p) return Promise.resolve('aborted');
    return p.readiness;
  }

  /** Connections open to a port, as the kernel's table would show them (0 when not set). */
  readonly connections = new Map<number, number>();

  async openConnections(port: number): Promise<number | undefined> {
    return this.connections.get(port) ?? 0;
  }

  byPid(pid: number): FakeProcess | undefined {
    return this.started.find((p) => p.pid === pid);
  }

  /** The processes that have not exited. */
  get alive(): FakeProcess[] {
    return this.started.filter((p) => !p.hasExited);
  }

  /** The last process started. */
  get last(): FakeProcess {
    const p = this.started.at(-1);
    if (!p) throw new Error('nothing was started');
    return p;
  }
}

/** Ports handed out from a small range, in memory (the real PortAllocator also probes them). */
export class FakePorts {
  readonly held = new Set<number>();

  constructor(
    private readonly first = 40_000,
    private readonly size = 100,
  ) {}

  async acquire(): Promise<number | undefined> {
    for (let p = this.first; p < this.first + this.size; p++) {
      if (this.held.has(p)) continue;
      this.held.add(p);
      return p;
    }
    return undefined;
  }

  release(port: number): void {
    this.held.delete(port);
  }
}
