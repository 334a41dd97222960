import { join } from 'node:path';
import { commandLine, repoRoot, runOk } from '../../harness/proc.js';
import { NODE } from './context.js';

const CLIENTS = join(repoRoot, 'dist/bench/clients');

export function clientPath(name: string): string {
  return join(CLIENTS, `${name}.js`);
}

/** Runs one of bench/clients to its end and parses the JSON line it prints last. */
export async function runClient<T>(
  name: string,
  args: string[],
  timeoutMs = 300_000,
): Promise<{ result: T; command: string }> {
  const argv = [clientPath(name), ...args];
  const out = await runOk(NODE, argv, { timeoutMs });
  const last = out.trim().split('\n').at(-1) ?? '';
  return { result: JSON.parse(last) as T, command: commandLine(NODE, argv) };
}

/** The `--name value` pairs of a client's command line (bench/clients/args.ts reads them). */
export function flags(o: Record<string, string | number>): string[] {
  return Object.entries(o).flatMap(([name, value]) => [`--${name}`, String(value)]);
}
