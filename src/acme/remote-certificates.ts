import { X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { HostRule } from '../registry/types.js';
import type { AcmeCertificates } from '../router/accepting/tls.js';
import type { HttpChallenges } from '../router/deciding/router.js';
import type { CertificatePem } from './manager.js';
import { qualifies } from './qualify.js';

/** How long a host found without a certificate is served the default one before it is asked about again. */
const NONE_MS = 10_000;

/** What a worker process asks the process that runs ACME (its primary). */
export interface AcmeAsker {
  /** The certificate served for `host`, once any order its handshake started is done (or null). */
  certificate(host: string): Promise<CertificatePem | null>;
  httpChallenge(host: string, token: string): Promise<string | null>;
  alpnChallenge(host: string): Promise<CertificatePem | null>;
}

/**
 * ACME's certificates and challenges as a worker process sees them: the manager runs in the
 * primary, which sends each certificate it serves (new or renewed); a handshake for a qualifying
 * host this worker has none for asks the primary (which may order one, as a single process
 * does), once per host at a time; the challenges, a CA's rare requests, are asked for.
 */
export class RemoteCertificates implements AcmeCertificates, HttpChallenges {
  private readonly served = new Map<string, SecureContext>();
  /** Their fingerprints (HTTP/2 coalescing compares them). */
  private readonly fingerprints = new Map<string, string>();
  private readonly asking = new Map<string, Promise<SecureContext | undefined>>();
  /** Hosts the primary had no certificate for, until when. */
  private readonly none = new Map<string, number>();

  constructor(private readonly primary: AcmeAsker) {}

  /** A certificate the primary serves now (sent to every worker). */
  take(host: string, pem: CertificatePem): void {
    this.served.set(host, createSecureContext(pem));
    this.fingerprints.set(host, new X509Certificate(pem.cert).fingerprint256);
    this.none.delete(host);
  }

  contextFor(host: string, rule: HostRule): SecureContext | Promise<SecureContext | undefined> | undefined {
    const ctx = this.served.get(host);
    if (ctx) return ctx;
    if (!qualifies(rule) || (this.none.get(host) ?? 0) > Date.now()) return undefined;
    let pending = this.asking.get(host);
    if (!pending) {
      pending = this.primary
        .certificate(host)
        .then(
          (pem) => {
            if (pem) this.take(host, pem);
            else this.none.set(host, Date.now() + NONE_MS);
            return this.served.get(host);
          },
          () => undefined,
        )
        .finally(() => this.asking.delete(host));
      this.asking.set(host, pending);
    }
    return pending;
  }

  fingerprintFor(host: string): string | undefined {
    return this.fingerprints.get(host);
  }

  /** The primary's dashboard tells a failing order; a worker does not. */
  orderFailure(): string | undefined {
    return undefined;
  }

  /** The table changed (the primary orders for new hosts): those without a certificate may have one now. */
  registryChanged(): void {
    this.none.clear();
  }

  async httpChallenge(host: string, token: string): Promise<string | undefined> {
    return (await this.primary.httpChallenge(host, token).catch(() => null)) ?? undefined;
  }

  async alpnChallenge(host: string): Promise<SecureContext | undefined> {
    const pem = await this.primary.alpnChallenge(host).catch(() => null);
    return pem ? createSecureContext(pem) : undefined;
  }
}
