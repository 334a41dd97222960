import { createHash } from 'node:crypto';
import { mkdir, open, readdir, readFile, unlink } from 'node:fs/promises';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { replaceFile } from '../util/replace-file.js';
import type { AccountRecord, AcmeStore, CertRecord, ChallengeKind, ChallengeRecord } from './store.js';

/** `--acme-dir` by default: `$XDG_DATA_HOME/arr/acme`, else `~/.local/share/arr/acme`. */
export function defaultAcmeDir(env: NodeJS.ProcessEnv = process.env): string {
  const xdg = env.XDG_DATA_HOME;
  return xdg?.startsWith('/') ? join(xdg, 'arr', 'acme') : join(homedir(), '.local', 'share', 'arr', 'acme');
}

function accountFile(directory: string): string {
  return join('accounts', `${createHash('sha256').update(directory).digest('hex').slice(0, 16)}.json`);
}

/** Names that may become file names: host names (a wildcard's too) and ACME tokens (base64url). */
const SAFE_NAME = /^(?:\*\.)?[A-Za-z0-9_.-]{1,253}$/;

function safe(name: string): boolean {
  return SAFE_NAME.test(name) && !name.startsWith('.');
}

/**
 * The ACME store of a single node: JSON files under one directory (0700, arr's own: server.ts
 * checks it at start), each file 0600 and written whole and durably (replace-file.ts), so that a
 * crash never leaves half a record.
 */
export class FileAcmeStore implements AcmeStore {
  readonly kind = 'file' as const;

  constructor(readonly dir: string) {}

  private async write(file: string, value: unknown): Promise<void> {
    const path = join(this.dir, file);
    await mkdir(join(path, '..'), { recursive: true, mode: 0o700 });
    // Durable: an account key or a certificate lost to a crash costs a new order (and rate limits).
    await replaceFile(path, JSON.stringify(value), { durable: true });
  }

  private async read<T>(file: string): Promise<T | undefined> {
    try {
      return JSON.parse(await readFile(join(this.dir, file), 'utf8')) as T;
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'ENOENT') return undefined;
      throw err;
    }
  }

  account(directory: string): Promise<AccountRecord | undefined> {
    return this.read<AccountRecord>(accountFile(directory));
  }

  async putAccountOnce(account: AccountRecord): Promise<AccountRecord> {
    const had = await this.account(account.directory);
    if (had) return had;
    await this.write(accountFile(account.directory), account);
    return account;
  }

  async cert(host: string): Promise<CertRecord | undefined> {
    return safe(host) ? this.read<CertRecord>(join('certs', `${host}.json`)) : undefined;
  }

  async certs(): Promise<CertRecord[]> {
    let names: string[];
    try {
      names = await readdir(join(this.dir, 'certs'));
    } catch {
      return [];
    }
    const out: CertRecord[] = [];
    for (const n of names) {
      if (!n.endsWith('.json')) continue;
      // A damaged file is one host without a record (reordered), not a failed poll.
      const r = await this.read<CertRecord>(join('certs', n)).catch(() => undefined);
      if (r && typeof r.host === 'string') out.push(r);
    }
    return out;
  }

  async putCert(record: CertRecord): Promise<void> {
    if (!safe(record.host)) throw new Error(`not a storable host name: ${record.host}`);
    await this.write(join('certs', `${record.host}.json`), record);
  }

  async challenge(kind: ChallengeKind, name: string): Promise<ChallengeRecord | undefined> {
    if (!safe(name)) return undefined;
    const r = await this.read<ChallengeRecord>(join('challenges', kind, `${name}.json`)).catch(
      () => undefined,
    );
    return r && r.expires > Date.now() ? r : undefined;
  }

  async putChallenge(record: ChallengeRecord): Promise<void> {
    if (!safe(record.name)) throw new Error('not a storable challenge name');
    await this.write(join('challenges', record.kind, `${record.name}.json`), record);
  }

  async deleteChallenge(kind: ChallengeKind, name: string): Promise<void> {
    if (safe(name)) await unlink(join(this.dir, 'challenges', kind, `${name}.json`)).catch(() => {});
  }

  async takeLease(host: string, owner: string, ttlMs: number): Promise<boolean> {
    if (!safe(host)) return false;
    const path = join(this.dir, 'leases', `${host}.json`);
    await mkdir(join(this.dir, 'leases'), { recursive: true, mode: 0o700 });
    const held = await this.read<{ owner: string; expires: number }>(join('leases', `${host}.json`)).catch(
      () => undefined,
    );
    if (held && held.expires > Date.now()) return false;
    if (held) await unlink(path).catch(() => {});
    try {
      // O_EXCL: of two processes sharing the directory, one creates the file.
      const f = await open(path, 'wx', 0o600);
      await f.writeFile(JSON.stringify({ owner, expires: Date.now() + ttlMs }));
      await f.close();
      return true;
    } catch {
      return false;
    }
  }

  async releaseLease(host: string, owner: string): Promise<void> {
    const held = await this.read<{ owner: string }>(join('leases', `${host}.json`)).catch(() => undefined);
    if (held?.owner === owner) await unlink(join(this.dir, 'leases', `${host}.json`)).catch(() => {});
  }

  async ticketKeys(period: number, fresh: Buffer): Promise<Buffer> {
    const file = join('tickets', `${period}.json`);
    const had = await this.read<{ keys: string }>(file).catch(() => undefined);
    if (had) return Buffer.from(had.keys, 'base64');
    await this.write(file, { period, keys: fresh.toString('base64') });
    // Periods before the previous one are of no use any more.
    for (const n of await readdir(join(this.dir, 'tickets')).catch(() => [] as string[])) {
      const p = Number.parseInt(n, 10);
      if (Number.isFinite(p) && p < period - 1) await unlink(join(this.dir, 'tickets', n)).catch(() => {});
    }
    return fresh;
  }

  async close(): Promise<void> {}
}
