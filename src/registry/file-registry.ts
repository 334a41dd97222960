import { type ParsedAppsFile, readAppsFile } from './apps-file.js';
import { IndexedRegistry } from './indexed-registry.js';
import { type ClaimResult, type LoadReport, type Registry, UnknownAppError } from './registry.js';
import { type InstanceAddress, type Problem, sameInstanceAddress } from './types.js';

/**
 * The embedded registry for one machine: apps come from an apps.json file, and `machines` live
 * in this process's memory only (instances do not outlive the arr that started them).
 */
export class FileRegistry extends IndexedRegistry implements Registry {
  readonly kind = 'file' as const;
  private readonly running = new Map<string, InstanceAddress[]>();

  /** The documents that did not parse at the last load (live reloads compare against them). */
  syntaxProblems: Problem[] = [];

  /** Why the file as it is now is not applied (caught half-written), while the last good version serves. */
  notApplied: string | undefined;

  constructor(readonly path: string) {
    super();
  }

  /** Reads the file, or applies `parsed`: a reading of it that the caller checked first. */
  async load(parsed?: ParsedAppsFile): Promise<LoadReport> {
    parsed ??= await readAppsFile(this.path);
    this.syntaxProblems = parsed.problems;
    return this.apply(parsed.docs, parsed.problems);
  }

  override problems(): readonly Problem[] {
    const set = this.notApplied;
    return set === undefined
      ? super.problems()
      : [
          { message: `${this.path} not applied: ${set}; still serving the last good version` },
          ...super.problems(),
        ];
  }

  async allAddresses(): Promise<Map<string, InstanceAddress[]>> {
    return new Map([...this.running].map(([id, list]) => [id, [...list]]));
  }

  async addressesOf(appId: string): Promise<InstanceAddress[]> {
    return [...(this.running.get(appId) ?? [])];
  }

  async claim(appId: string, machine: InstanceAddress): Promise<ClaimResult> {
    const app = this.table.apps.get(appId);
    if (!app) throw new UnknownAppError(appId);
    const list = this.running.get(appId) ?? [];
    const granted = list.length < app.instances;
    if (granted) {
      list.push(machine);
      this.running.set(appId, list);
    }
    return { granted, machines: [...list] };
  }

  async move(appId: string, from: InstanceAddress, to: InstanceAddress): Promise<boolean> {
    const list = this.running.get(appId);
    const i = list ? list.findIndex((m) => sameInstanceAddress(m, from)) : -1;
    if (!list || i < 0) return false;
    list[i] = to;
    return true;
  }

  async noteDeploy(): Promise<void> {}

  async release(appId: string, machine: InstanceAddress): Promise<void> {
    const list = this.running.get(appId);
    if (!list) return;
    const left = list.filter((m) => !sameInstanceAddress(m, machine));
    if (left.length > 0) this.running.set(appId, left);
    else this.running.delete(appId);
  }

  async releaseMachine(host: string): Promise<number> {
    let removed = 0;
    for (const [id, list] of this.running) {
      const left = list.filter((m) => m.host !== host);
      removed += list.length - left.length;
      if (left.length > 0) this.running.set(id, left);
      else this.running.delete(id);
    }
    return removed;
  }

  async close(): Promise<void> {}
}
