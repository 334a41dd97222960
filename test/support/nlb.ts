import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { type Running, startNlb } from './proc.js';

const dirs: string[] = [];

/** A fresh temporary folder, removed by removeTempDirs(). */
export function tempDir(): string {
  const dir = mkdtempSync(join(tmpdir(), 'nlb-test-'));
  dirs.push(dir);
  return dir;
}

export function removeTempDirs(): void {
  for (const d of dirs.splice(0)) rmSync(d, { recursive: true, force: true });
}

/** Writes `config` (JSON-encoded unless a string) as nlb.json in a fresh folder; returns its path. */
export function writeConfig(config: unknown): string {
  const file = join(tempDir(), 'nlb.json');
  writeFileSync(file, typeof config === 'string' ? config : JSON.stringify(config));
  return file;
}

export interface Route {
  port: number;
  host?: string;
  backends: { host: string; port: number }[];
  proxyProtocol?: boolean;
}

/** `host:port` backends on 127.0.0.1. */
export const local = (...ports: number[]) => ports.map((port) => ({ host: '127.0.0.1', port }));

/** Starts nlb on `routes` and waits until it listens on every one of them. */
export async function runningNlb(routes: Route[], args: string[] = []): Promise<Running> {
  const file = writeConfig(routes);
  const nlb = startNlb(['--config', file, ...args]);
  for (const r of routes) await nlb.waitFor(new RegExp(`listening on \\S+:${r.port} `));
  return nlb;
}

/** The output lines of a process that are JSON log lines, parsed. */
export function logLines(output: string): { level: string; msg: string; [k: string]: unknown }[] {
  return output
    .split('\n')
    .filter((l) => l.startsWith('{'))
    .map((l) => JSON.parse(l));
}
