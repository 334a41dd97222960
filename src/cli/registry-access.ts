import { resolve } from 'node:path';
import { FileRegistry } from '../registry/file-registry.js';
import { MongoRegistry } from '../registry/mongo-registry.js';

/** Where an admin command prints a line (stdout or stderr). */
export type Print = (line: string) => void;

/** How an admin command ends: its exit status. Messages have been printed. */
export type ExitCode = 0 | 1;

/**
 * The registry a command reads: the MongoDB one with --mongo (a short server selection, so
 * that an unreachable one is told at once), else the apps file.
 */
export function openRegistry(opts: { apps: string; mongo?: string }): MongoRegistry | FileRegistry {
  return opts.mongo
    ? new MongoRegistry(opts.mongo, { serverSelectionTimeoutMS: 5000 })
    : new FileRegistry(resolve(opts.apps));
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
