import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';

/** A certificate and key that cannot be served together; the message names both files. */
export class CertificateError extends Error {}

/**
 * The TLS context of a certificate and its key (PEM), or a CertificateError that names both
 * files: a key that belongs to another certificate, or files that are not PEM at all.
 */
export function secureContextOf(cert: Buffer, key: Buffer, certFile: string, keyFile: string): SecureContext {
  try {
    return createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
  } catch (err) {
    const why = openSslReason(err);
    throw new CertificateError(
      /key values mismatch/i.test(why)
        ? `"${certFile}" does not match its key "${keyFile}"`
        : `"${certFile}" and "${keyFile}" are not a usable certificate and key (${why})`,
    );
  }
}

/** When the first certificate of a PEM file expires (ms since the epoch), or undefined if it does not parse. */
export function expiryOf(pem: Buffer): number | undefined {
  try {
    return Date.parse(new X509Certificate(pem).validTo);
  } catch {
    return undefined;
  }
}

/** OpenSSL's messages start with an error code: the readable part. */
function openSslReason(err: unknown): string {
  const message = err instanceof Error ? err.message : String(err);
  return message.replace(/^error:[0-9A-F]+:[^:]*:+/, '');
}
