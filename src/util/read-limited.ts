import { closeSync, constants, fstatSync, openSync, readSync, type Stats } from 'node:fs';
import { type FileHandle, open } from 'node:fs/promises';

/**
 * The most a certificate or key file may hold. A PEM chain is a few kilobytes; without a cap a
 * path such as /dev/zero, or a huge file, would be read into memory until arr runs out of it.
 */
export const MAX_PEM_BYTES = 1024 * 1024;

/** A file that is not read because of what it is (not a regular file) or its size. */
export class FileRefusedError extends Error {}

// Not blocking on open: a FIFO named as a certificate would otherwise wait for a writer.
const OPEN_FLAGS = constants.O_RDONLY | constants.O_NONBLOCK;

/** Why a file could not be read (or used), for a log line or a problem: an errno code, else the message. */
export function readFailure(err: unknown): string {
  const code = (err as NodeJS.ErrnoException).code;
  if (typeof code === 'string' && /^E[A-Z]+$/.test(code)) return code;
  return err instanceof Error ? err.message : String(err);
}

function refusal(stats: Stats, maxBytes: number): FileRefusedError | undefined {
  if (!stats.isFile()) return new FileRefusedError('not a regular file');
  if (stats.size > maxBytes) return tooLarge(maxBytes);
  return undefined;
}

function tooLarge(maxBytes: number): FileRefusedError {
  const mib = maxBytes / (1024 * 1024);
  return new FileRefusedError(`larger than ${Number.isInteger(mib) ? `${mib} MB` : `${maxBytes} bytes`}`);
}

/**
 * The whole of a regular file of at most `maxBytes`; anything else (a device, a FIFO, a
 * directory, a bigger file) is refused with a FileRefusedError before a byte is read. The
 * checks are made on the open file, and a file that grows while it is read is refused too.
 */
export async function readRegularFile(path: string, maxBytes = MAX_PEM_BYTES): Promise<Buffer> {
  const handle: FileHandle = await open(path, OPEN_FLAGS);
  try {
    const refused = refusal(await handle.stat(), maxBytes);
    if (refused) throw refused;
    const buf = Buffer.allocUnsafe(maxBytes + 1);
    let length = 0;
    for (;;) {
      const { bytesRead } = await handle.read(buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw tooLarge(maxBytes);
    }
    return Buffer.from(buf.subarray(0, length));
  } finally {
    await handle.close();
  }
}

/** readRegularFile, synchronously: for options read once, at start-up. */
export function readRegularFileSync(path: string, maxBytes = MAX_PEM_BYTES): Buffer {
  const fd = openSync(path, OPEN_FLAGS);
  try {
    const refused = refusal(fstatSync(fd), maxBytes);
    if (refused) throw refused;
    const buf = Buffer.allocUnsafe(maxBytes + 1);
    let length = 0;
    for (;;) {
      const bytesRead = readSync(fd, buf, length, buf.length - length, null);
      if (bytesRead === 0) break;
      length += bytesRead;
      if (length > maxBytes) throw tooLarge(maxBytes);
    }
    return Buffer.from(buf.subarray(0, length));
  } finally {
    closeSync(fd);
  }
}
