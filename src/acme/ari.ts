import { X509Certificate } from 'node:crypto';

/**
 * ACME Renewal Information (RFC 9773): the CA's suggested window for renewing a certificate,
 * fetched from its directory's `renewalInfo` by the certificate's id, and the time picked in it.
 * acme-client has no ARI: the GET is plain HTTPS, the id is read from the certificate here.
 */

const MINUTE = 60_000;
const HOUR = 60 * MINUTE;
const DAY = 24 * HOUR;

/** How a certificate's renewal time was chosen: the CA's window, or two thirds of its lifetime. */
export type RenewalSource = 'ari' | 'lifetime';

export interface Renewal {
  renewAt: number;
  source: RenewalSource;
  /** ARI: when to ask the CA again (its Retry-After, within a minute and a day). */
  checkAt?: number;
}

/** A DER element: its tag, and where its contents begin and end. */
interface Tlv {
  tag: number;
  start: number;
  end: number;
}

function tlv(der: Buffer, at: number): Tlv {
  const tag = der[at]!;
  let len = der[at + 1]!;
  let start = at + 2;
  if (len & 0x80) {
    const n = len & 0x7f;
    if (n === 0 || n > 4) throw new Error('an unsupported DER length');
    len = der.readUIntBE(start, n);
    start += n;
  }
  if (start + len > der.length) throw new Error('a truncated DER element');
  return { tag, start, end: start + len };
}

function children(der: Buffer, parent: Tlv): Tlv[] {
  const out: Tlv[] = [];
  for (let at = parent.start; at < parent.end; ) {
    const c = tlv(der, at);
    out.push(c);
    at = c.end;
  }
  return out;
}

/** 2.5.29.35, authorityKeyIdentifier, as its DER contents. */
const AKI_OID = Buffer.from([0x55, 0x1d, 0x23]);

/**
 * The ARI id of a certificate (RFC 9773 §4.1): base64url of its authority key identifier, a
 * dot, base64url of its serial number's DER contents (a leading zero byte included).
 */
export function certificateId(certPem: string): string {
  const der = new X509Certificate(certPem).raw;
  const tbs = children(der, tlv(der, 0))[0]!;
  const fields = children(der, tbs);
  // [0] version comes first in every v3 certificate; the serial follows.
  const serial = fields[fields[0]!.tag === 0xa0 ? 1 : 0]!;
  const extensions = fields.find((f) => f.tag === 0xa3);
  let keyId: Buffer | undefined;
  for (const ext of extensions ? children(der, children(der, extensions)[0]!) : []) {
    const [oid, ...rest] = children(der, ext);
    if (!oid || !der.subarray(oid.start, oid.end).equals(AKI_OID)) continue;
    const value = rest[rest.length - 1]!; // after the optional "critical"
    const seq = tlv(der, value.start);
    const id = children(der, seq).find((c) => c.tag === 0x80); // [0] keyIdentifier
    if (id) keyId = der.subarray(id.start, id.end);
  }
  if (!keyId) throw new Error('the certificate has no authority key identifier');
  return `${keyId.toString('base64url')}.${der.subarray(serial.start, serial.end).toString('base64url')}`;
}

/** Two thirds of the lifetime: the renewal time without ARI. */
export function lifetimeRenewal(notBefore: number, notAfter: number): Renewal {
  return { renewAt: notBefore + ((notAfter - notBefore) * 2) / 3, source: 'lifetime' };
}

/** Retry-After (seconds or an HTTP date) as a delay, within a minute and a day; 6 hours without one. */
export function retryAfterMs(header: string | undefined, now: number): number {
  let ms = 6 * HOUR;
  if (header !== undefined && header.trim() !== '') {
    const seconds = Number(header);
    const at = Date.parse(header);
    if (Number.isFinite(seconds)) ms = seconds * 1000;
    else if (Number.isFinite(at)) ms = at - now;
  }
  return Math.min(DAY, Math.max(MINUTE, ms));
}

/**
 * The renewal time picked in a suggested window: uniformly at random inside it (so that a
 * CA's many certificates do not all come back at once), now if the window is already past.
 * Throws on a window that is not one (RFC 9773 §4.2: end before start).
 */
export function renewalInWindow(
  window: { start?: unknown; end?: unknown } | undefined,
  now: number,
  random = Math.random,
): number {
  const start = typeof window?.start === 'string' ? Date.parse(window.start) : Number.NaN;
  const end = typeof window?.end === 'string' ? Date.parse(window.end) : Number.NaN;
  if (!Number.isFinite(start) || !Number.isFinite(end) || end <= start)
    throw new Error('the CA sent no valid suggestedWindow');
  if (end <= now) return now;
  const from = Math.max(start, now);
  return from + random() * (end - from);
}
