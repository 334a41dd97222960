import { createPrivateKey, X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import { certificateId, type Renewal } from './ari.js';
import type { CertRecord } from './store.js';

// What the manager needs to know of a certificate and of a failed order, apart from its state.

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;

/** The wait after the n-th failure in a row: a minute, doubled each time, at most a day. */
export function backOffMs(failures: number): number {
  return Math.min(DAY, MINUTE * 2 ** Math.max(0, Math.min(failures - 1, 20)));
}

/**
 * The certificate of a stored record, checked before it is served: it parses, covers `host`,
 * has not expired and matches its key. Throws with the reason otherwise.
 */
export function usableCertificate(
  host: string,
  certPem: string,
  keyPem: string,
): { ctx: SecureContext; x509: X509Certificate } {
  const x509 = new X509Certificate(certPem);
  if (x509.checkHost(host, { wildcards: false }) === undefined) throw new Error(`it does not cover ${host}`);
  if (Date.parse(x509.validTo) <= Date.now()) throw new Error('it has expired');
  if (!x509.checkPrivateKey(createPrivateKey(keyPem))) throw new Error('its key does not match');
  return { ctx: createSecureContext({ cert: certPem, key: keyPem, minVersion: 'TLSv1.2' }), x509 };
}

/** A renewal as the store keeps it. */
export function renewalFields(r: Renewal): Pick<CertRecord, 'renewAt' | 'renewalSource' | 'ariCheckAt'> {
  return { renewAt: r.renewAt, renewalSource: r.source, ariCheckAt: r.checkAt };
}

/** The ARI id of a certificate, or undefined when it cannot have one. */
export function idOf(certPem: string): string | undefined {
  try {
    return certificateId(certPem);
  } catch {
    return undefined;
  }
}

/**
 * What a failed order is logged and shown with: the CA's problem detail when it sent one
 * (acme-client puts it in the message), else the error's own message; one line, bounded.
 */
export function caMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').slice(0, 400) || 'unknown error';
}
