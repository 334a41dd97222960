import { createCipheriv, createDecipheriv, hkdfSync, randomBytes } from 'node:crypto';

/**
 * Private keys at rest: with `ARR_ACME_KEY` set, every stored private key is sealed with
 * AES-256-GCM under a key derived from it (HKDF-SHA-256), so that a copy of the store (a
 * backup, a database dump) does not give the keys away. Sealed values are marked, so a store
 * written without the key still reads (and one written with it fails to open without it).
 */
const PREFIX = 'arr-sealed:v1:';

export class KeySeal {
  private readonly key: Buffer | undefined;

  constructor(secret: string | undefined) {
    this.key = secret
      ? Buffer.from(hkdfSync('sha256', secret, 'arr-acme', 'private keys at rest', 32))
      : undefined;
  }

  seal(pem: string): string {
    if (!this.key) return pem;
    const iv = randomBytes(12);
    const cipher = createCipheriv('aes-256-gcm', this.key, iv);
    const body = Buffer.concat([cipher.update(pem, 'utf8'), cipher.final()]);
    return PREFIX + Buffer.concat([iv, cipher.getAuthTag(), body]).toString('base64');
  }

  /** The PEM, or an Error saying why it cannot be had (no key, wrong key, damaged). */
  open(stored: string): string {
    if (!stored.startsWith(PREFIX)) return stored;
    if (!this.key) throw new Error('the stored key is sealed and ARR_ACME_KEY is not set');
    const raw = Buffer.from(stored.slice(PREFIX.length), 'base64');
    const decipher = createDecipheriv('aes-256-gcm', this.key, raw.subarray(0, 12));
    decipher.setAuthTag(raw.subarray(12, 28));
    try {
      return Buffer.concat([decipher.update(raw.subarray(28)), decipher.final()]).toString('utf8');
    } catch {
      throw new Error('the stored key cannot be opened with this ARR_ACME_KEY');
    }
  }
}
