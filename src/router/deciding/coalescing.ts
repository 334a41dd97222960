import { BlockList, isIP } from 'node:net';
import type { PeerCertificate, TLSSocket } from 'node:tls';
import type { Route } from '../../registry/types.js';
import { CONNECTION, type H2Request } from '../carrying/h2-messages.js';

/**
 * Connection coalescing on HTTP/2 (RFC 9113 §9.1.1): what certificate a TLS connection was
 * opened with, and whether a stream on it for another host may be answered (421 otherwise).
 * The HTTP/2 front marks each connection as it is accepted (markIdentity); the router asks
 * `misdirected` once it knows the route's host.
 */

/** What `ServedCertificates` answers for a host that gets arr's default certificate. */
export const DEFAULT_CERTIFICATE = 'default';

/** Which certificate a handshake for a host gets now (tls.ts's CertificateStore answers). */
export interface ServedCertificates {
  /**
   * The SHA-256 fingerprint of the certificate a host of `route` is served with, DEFAULT_CERTIFICATE
   * for arr's default one, or undefined when that is not known yet (its files not read).
   */
  certificateOf(route: Route): string | undefined;
}

/** Without a certificate store: a host's own files are a certificate not known, others get the default. */
export const FILES_OR_DEFAULT: ServedCertificates = {
  certificateOf: (route) => (route.rule.cert && route.rule.key ? undefined : DEFAULT_CERTIFICATE),
};

/** What a connection's certificate is, for coalescing (RFC 9113 §9.1.1). */
interface Identity {
  /** The SNI name the connection was opened with (lower case), if any. */
  sni: string | undefined;
  /** Whether its certificate is arr's default one (the SNI name had none of its own). */
  isDefault: boolean;
  cert: PeerCertificate | undefined;
  /** Host names looked at so far: whether the certificate covers them. */
  covered: Map<string, boolean>;
}

/** At most this many host names are remembered per connection (a client names what it wants). */
const MAX_COVERED = 64;

const IDENTITY = Symbol('arr.h2.identity');

type MarkedSocket = TLSSocket & { [IDENTITY]?: Identity };

/** Remembers on the socket what certificate it was opened with (as it is handed to HTTP/2). */
export function markIdentity(socket: TLSSocket, defaultFingerprint: string): void {
  (socket as MarkedSocket)[IDENTITY] = identityOf(socket, defaultFingerprint);
}

function identityOf(socket: TLSSocket, defaultFingerprint: string): Identity {
  const cert = socket.getCertificate() as PeerCertificate | null;
  const known = cert && typeof cert.fingerprint256 === 'string' ? cert : undefined;
  const sni = socket.servername;
  return {
    sni: typeof sni === 'string' ? sni.toLowerCase() : undefined,
    isDefault: known?.fingerprint256 === defaultFingerprint,
    cert: known,
    covered: new Map(),
  };
}

/**
 * Why a stream for `host` on this HTTP/2 connection is misdirected (421), or undefined when it
 * is not. Browsers send a stream for every host the connection's certificate covers (RFC 9113
 * §9.1.1), whichever name opened it; arr serves it when that certificate is the one the host
 * would get by SNI itself: any host on a connection opened for it (SNI); on a connection opened
 * without SNI (it has the default certificate), any host without files of its own, as on
 * HTTP/1.1; and any other host when the connection's certificate names it and is the one the
 * host is served with (as `certificates` say: the same fingerprint, or both arr's default): a second name
 * under a wildcard or a certificate with several names, from files or ACME. No host is answered
 * under a certificate that is not its own.
 */
export function misdirected(
  req: Pick<H2Request, typeof CONNECTION>,
  route: Route,
  host: string,
  certificates: ServedCertificates,
): string | undefined {
  const id = (req[CONNECTION] as MarkedSocket | undefined)?.[IDENTITY];
  if (!id) return 'this connection cannot be told apart from another';
  // Opened for this very name: its certificate is the one SNI chose for the host (own files,
  // ACME or the default), as on HTTP/1.1.
  if (id.sni === host) return undefined;
  if (id.sni === undefined) return route.rule.cert && route.rule.key ? noSni(host) : undefined;
  const served = certificates.certificateOf(route);
  const same =
    served === DEFAULT_CERTIFICATE
      ? id.isDefault
      : served !== undefined && served === id.cert?.fingerprint256;
  if (!same)
    return served === DEFAULT_CERTIFICATE
      ? `this connection's certificate does not cover ${host}; open a connection for it`
      : `${host} has a certificate of its own; open a connection for it`;
  let covered = id.covered.get(host);
  if (covered === undefined) {
    covered = id.cert !== undefined && covers(id.cert, host);
    if (id.covered.size < MAX_COVERED) id.covered.set(host, covered);
  }
  return covered
    ? undefined
    : `this connection's certificate does not cover ${host}; open a connection for it`;
}

/** Why a host with a certificate of its own is not served on a connection opened without SNI. */
export function noSni(host: string): string {
  return `${host} has a certificate of its own; open a connection for it with its name (SNI)`;
}

/**
 * Whether the certificate's subjectAltName names the host (RFC 6125 §6.4): a DNS name equal to
 * it, a wildcard `*.` that stands for its whole first label (one label only), or its IP
 * address. Node's checkServerIdentity is not used: it refuses a wildcard over two labels, such
 * as arr's default `*.localhost`, which browsers do coalesce on.
 */
function covers(cert: PeerCertificate, host: string): boolean {
  const ip = host.startsWith('[') ? host.slice(1, -1) : isIP(host) ? host : undefined;
  const dot = host.indexOf('.');
  const parent = dot > 0 ? host.slice(dot) : undefined;
  for (const entry of (cert.subjectaltname ?? '').split(', ')) {
    if (ip !== undefined) {
      if (entry.startsWith('IP Address:') && sameAddress(entry.slice(11), ip)) return true;
      continue;
    }
    if (!entry.startsWith('DNS:')) continue;
    const name = entry.slice(4).toLowerCase();
    if (name === host) return true;
    if (parent !== undefined && name.startsWith('*.') && name.slice(1) === parent) return true;
  }
  return false;
}

function sameAddress(a: string, b: string): boolean {
  if (a === b) return true;
  const block = new BlockList();
  const family = isIP(a) === 6 ? 'ipv6' : 'ipv4';
  if (isIP(a) === 0 || isIP(b) === 0) return false;
  block.addAddress(a, family);
  return block.check(b, isIP(b) === 6 ? 'ipv6' : 'ipv4');
}
