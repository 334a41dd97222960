import { resolve } from 'node:path';
import { FileRegistry } from '../registry/file-registry.js';
import type { MongoRegistry } from '../registry/mongo-registry.js';
import type { Registry } from '../registry/registry.js';
import type { Revisions } from '../registry/revisions.js';

/** Where an admin command prints a line (stdout or stderr). */
export type Print = (line: string) => void;

/** How an admin command ends: its exit status. Messages have been printed. */
export type ExitCode = 0 | 1;

/**
 * The registry a command reads, and where it is as a message may say (no password): the MongoDB
 * one with --mongo (a short server selection, so that an unreachable one is told at once), else
 * the apps file. The MongoDB driver is loaded only then: arr serving a file never loads it.
 */
export async function openRegistry(opts: {
  apps: string;
  mongo?: string;
}): Promise<{ registry: MongoRegistry | FileRegistry; source: string }> {
  if (!opts.mongo) return { registry: new FileRegistry(resolve(opts.apps)), source: resolve(opts.apps) };
  const { MongoRegistry, redactUrl } = await import('../registry/mongo-registry.js');
  return {
    registry: new MongoRegistry(opts.mongo, { serverSelectionTimeoutMS: 5000 }),
    source: redactUrl(opts.mongo),
  };
}

/** The registry's revisions and deploys, from a module that loads the MongoDB driver: only when asked. */
export async function revisionsOf(registry: Registry): Promise<Revisions> {
  return (await import('../registry/revisions.js')).revisionsOf(registry);
}

export function describeError(e: unknown): string {
  const code = (e as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  const message = e instanceof Error ? e.message : String(e);
  // OpenSSL's messages start with an error code: keep the readable part.
  return message.replace(/^error:[0-9A-F]+:[^:]*:+/, '');
}

export function plural(n: number, word: string): string {
  return `${n} ${word}${n === 1 ? '' : 's'}`;
}
