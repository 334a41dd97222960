import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import { expiryOf } from '../../util/certificates.js';
import { readFailure, readRegularFile } from '../../util/read-limited.js';

/** What the dashboard shows of a certificate file: when it expires, or why it cannot be read. */
export interface FileExpiry {
  /** ms since the epoch; undefined when the file cannot be read or parsed. */
  expires?: number;
  problem?: string;
}

/** At most this many files are remembered (a page shows 50 apps; 10,000 apps may have files each). */
const MAX_FILES = 2_000;

/**
 * The expiry of certificate files, for the dashboard's page of apps: each file is read once
 * and read again only when its size, time or inode changed (one stat per look). Off the
 * request path: only the admin endpoint asks.
 */
export class CertificateExpiries {
  private readonly files = new Map<string, { stamp: string; expiry: FileExpiry }>();
  private readonly pems = new WeakMap<Buffer, number | undefined>();

  async ofFile(file: string): Promise<FileExpiry> {
    const path = resolve(file);
    let stamp: string;
    try {
      const s = await stat(path);
      stamp = `${s.size}:${s.mtimeMs}:${s.ino}`;
    } catch (err) {
      return { problem: `cannot read "${file}" (${readFailure(err)})` };
    }
    const known = this.files.get(path);
    if (known?.stamp === stamp) return known.expiry;
    let expiry: FileExpiry;
    try {
      const expires = expiryOf(await readRegularFile(path));
      expiry = expires === undefined ? { problem: `"${file}" is not a PEM certificate` } : { expires };
    } catch (err) {
      expiry = { problem: `cannot read "${file}" (${readFailure(err)})` };
    }
    if (this.files.size >= MAX_FILES) this.files.clear();
    this.files.set(path, { stamp, expiry });
    return expiry;
  }

  /** The expiry of a certificate held in memory (the default one), parsed once per buffer. */
  ofPem(pem: Buffer): number | undefined {
    if (!this.pems.has(pem)) this.pems.set(pem, expiryOf(pem));
    return this.pems.get(pem);
  }
}
