import { randomBytes } from 'node:crypto';
import { closeSync, constants, fchmodSync, openSync, renameSync, rmSync, writeSync } from 'node:fs';
import { open, rename, rm } from 'node:fs/promises';
import { basename, dirname, join } from 'node:path';

/**
 * Every file arr replaces whole (the state files, the ACME store, an apps file that
 * `arr restart` edits) is written here: a temporary file beside it, then renamed over it, so
 * that a reader sees the old file or the new one, never half of one.
 *
 * The temporary name is random and opened with O_CREAT|O_EXCL|O_NOFOLLOW: with a name known in
 * advance (`<file>.<pid>.tmp`), another user who can write the directory plants a symlink
 * there, and arr, as root perhaps, writes through it into any file.
 */
export interface ReplaceOptions {
  /** The new file's mode, exactly (the umask does not narrow it); default 0600. */
  mode?: number;
  /**
   * fsync the file before the rename and the directory after it: for what a crash of the
   * machine must not lose or leave empty (keys, certificates, a user's apps file).
   */
  durable?: boolean;
}

const CREATE = constants.O_WRONLY | constants.O_CREAT | constants.O_EXCL | constants.O_NOFOLLOW;

function temporaryName(file: string): string {
  return join(dirname(file), `.${basename(file)}.${randomBytes(9).toString('base64url')}.tmp`);
}

/**
 * Replaces `file` with `data` synchronously, for writers whose writes must not overtake each
 * other. Not durable: the one such writer is the state file, which means nothing after a crash
 * of the machine (its boot id changes).
 */
export function replaceFileSync(file: string, data: string, mode = 0o600): void {
  const tmp = temporaryName(file);
  const fd = openSync(tmp, CREATE, mode);
  try {
    try {
      fchmodSync(fd, mode);
      const bytes = Buffer.from(data);
      for (let off = 0; off < bytes.length; ) off += writeSync(fd, bytes, off);
    } finally {
      closeSync(fd);
    }
    renameSync(tmp, file);
  } catch (err) {
    rmSync(tmp, { force: true });
    throw err;
  }
}

/** Replaces `file` with `data`. */
export async function replaceFile(file: string, data: string, opts: ReplaceOptions = {}): Promise<void> {
  const tmp = temporaryName(file);
  const handle = await open(tmp, CREATE, opts.mode ?? 0o600);
  try {
    try {
      await handle.chmod(opts.mode ?? 0o600);
      await handle.writeFile(data);
      if (opts.durable) await handle.sync();
    } finally {
      await handle.close();
    }
    await rename(tmp, file);
  } catch (err) {
    await rm(tmp, { force: true });
    throw err;
  }
  if (opts.durable) await syncDirectory(dirname(file));
}

/** Makes a rename in `dir` durable. Some file systems cannot fsync a directory (EINVAL): nothing to do there. */
async function syncDirectory(dir: string): Promise<void> {
  const handle = await open(dir, constants.O_RDONLY | constants.O_DIRECTORY);
  try {
    await handle.sync();
  } catch (err) {
    if ((err as NodeJS.ErrnoException).code !== 'EINVAL') throw err;
  } finally {
    await handle.close();
  }
}
