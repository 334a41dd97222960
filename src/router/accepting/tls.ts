import { X509Certificate } from 'node:crypto';
import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { SecureContext } from 'node:tls';
import type { Registry } from '../../registry/registry.js';
import type { HostRule, Route } from '../../registry/types.js';
import { CertificateError, secureContextOf } from '../../util/certificates.js';
import { normaliseHostName } from '../../util/host-name.js';
import type { Logger } from '../../util/log.js';
import { readFailure, readRegularFile } from '../../util/read-limited.js';
import { DEFAULT_CERTIFICATE, type ServedCertificates } from '../deciding/coalescing.js';

type SniCallback = (err: Error | null, ctx?: SecureContext) => void;

/** Certificates from an ACME CA (src/acme), consulted after a host's own files, before the default. */
export interface AcmeCertificates {
  /**
   * The certificate of `host`, a host of the registry (a wildcard's own name for the names under
   * it): at once when one is served; a promise while it is being ordered; undefined: the default.
   */
  contextFor(host: string, rule: HostRule): SecureContext | Promise<SecureContext | undefined> | undefined;
  /** The fingerprint of the certificate served for `host` now, if one is (else: the default). */
  fingerprintFor(host: string): string | undefined;
  /** Why the last order for `host` failed, while it is in back-off. */
  orderFailure(host: string): string | undefined;
  /** The registry changed: hosts that appeared are ordered, those that left forgotten. */
  registryChanged(): void;
}

/** What `reload` did: certificates read again, and those that could not be (kept as they were). */
export interface CertificateReload {
  reloaded: number;
  failed: number;
}

/** The files of a host's certificate as they were when it failed: it is tried again once they change. */
interface Failure {
  stamp: string;
  why: string;
}

/**
 * Per-host certificates for SNI. A host's certificate is read when its first handshake comes
 * and kept, so thousands of hosts cost nothing until they are used. A host without its own
 * certificate gets the default one; so does a host whose files cannot be used, until they
 * change (a look at their size and time per handshake, no read) or a reload.
 */
export class CertificateStore implements ServedCertificates {
  private readonly contexts = new Map<string, Promise<SecureContext | undefined>>();
  /** The fingerprint of each context read from files, by rule host (for HTTP/2 coalescing). */
  private readonly fingerprints = new Map<string, string>();
  /** The route each loaded (or failed) name came from, for a reload. */
  private readonly routes = new Map<string, Route>();
  private readonly failures = new Map<string, Failure>();

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly acme?: AcmeCertificates,
  ) {}

  readonly SNICallback = (servername: string, cb: SniCallback): void => {
    const route = this.registry.route(normaliseHostName(servername));
    // Unknown names get the default certificate, and are not cached: a client must not be able
    // to grow the cache at will.
    if (!route) {
      cb(null);
      return;
    }
    // Keyed by the rule's host: every name under a wildcard shares its certificate.
    const name = route.rule.host;
    if (this.acme && !route.rule.cert) {
      // Not cached here: a renewed certificate is served from the next handshake on.
      const c = this.acme.contextFor(name, route.rule);
      if (c === undefined || !('then' in c)) cb(null, c);
      else
        c.then(
          (ctx) => cb(null, ctx),
          () => cb(null),
        );
      return;
    }
    let ctx = this.contexts.get(name);
    if (!ctx) {
      ctx = this.load(route);
      this.contexts.set(name, ctx);
    }
    ctx.then(
      (c) => cb(null, c),
      () => cb(null),
    );
  };

  /**
   * Which certificate a handshake for a host of `route` gets now (DEFAULT_CERTIFICATE: arr's
   * default one): the fingerprint of its own files' once they are read (undefined before: the
   * read starts, as a handshake would start it), else of ACME's when one is served, else the
   * default.
   */
  certificateOf(route: Route): string | undefined {
    const { rule } = route;
    if (rule.cert && rule.key) {
      const read = this.fingerprints.get(rule.host);
      if (read !== undefined) return read;
      if (this.failures.has(rule.host)) return DEFAULT_CERTIFICATE;
      if (!this.contexts.has(rule.host)) this.contexts.set(rule.host, this.load(route));
      return undefined;
    }
    return this.acme?.fingerprintFor(rule.host) ?? DEFAULT_CERTIFICATE;
  }

  /** Forgets every loaded certificate and failure (the registry changed). */
  clear(): void {
    this.contexts.clear();
    this.fingerprints.clear();
    this.routes.clear();
    this.failures.clear();
    this.acme?.registryChanged();
  }

  /** Why the host's own certificate is not served (the default one is), when it is not. */
  failure(host: string): string | undefined {
    return this.failures.get(host)?.why;
  }

  /** Why ACME's last order for the host failed, while it waits to try again. */
  orderFailure(host: string): string | undefined {
    return this.acme?.orderFailure(host);
  }

  /**
   * Reads again the files of every host whose certificate was loaded or failed (SIGHUP). A host
   * whose new files cannot be used keeps the certificate it had, and the reason is logged.
   */
  async reload(): Promise<CertificateReload> {
    const result: CertificateReload = { reloaded: 0, failed: 0 };
    await Promise.all(
      [...this.routes].map(async ([name, route]) => {
        const before = await this.contexts.get(name)?.catch(() => undefined);
        this.failures.delete(name);
        const ctx = await this.read(route, !!before);
        if (ctx) {
          this.contexts.set(name, Promise.resolve(ctx));
          result.reloaded++;
        } else {
          result.failed++;
          if (before) this.contexts.set(name, Promise.resolve(before));
        }
      }),
    );
    return result;
  }

  private async load(route: Route): Promise<SecureContext | undefined> {
    if (!route.rule.cert || !route.rule.key) return undefined;
    this.routes.set(route.rule.host, route);
    const ctx = await this.read(route);
    // Not cached as a failure: the next handshake looks whether the files changed meanwhile.
    if (!ctx) this.contexts.delete(route.rule.host);
    return ctx;
  }

  /**
   * The route's context from its files, or undefined (logged once per change of the files);
   * `kept`: the host keeps the certificate it had (a reload), else it gets the default one.
   */
  private async read(route: Route, kept = false): Promise<SecureContext | undefined> {
    const { rule, app } = route;
    const files = [resolve(rule.cert!), resolve(rule.key!)] as const;
    const stamp = await stampOf(files);
    const failed = this.failures.get(rule.host);
    if (failed && failed.stamp === stamp) return undefined;
    try {
      const [cert, key] = await Promise.all(files.map((f) => readRegularFile(f)));
      const ctx = secureContextOf(cert!, key!, rule.cert!, rule.key!);
      this.fingerprints.set(rule.host, new X509Certificate(cert!).fingerprint256);
      this.failures.delete(rule.host);
      return ctx;
    } catch (err) {
      const why = err instanceof CertificateError ? err.message : readFailure(err);
      this.failures.set(rule.host, { stamp, why });
      this.log.error(
        { app: app.id, host: rule.host, err: why },
        `certificate of ${rule.host} cannot be used (${why}); ${kept ? 'keeping the one it had' : 'serving the default one until its files change'}`,
      );
      return undefined;
    }
  }
}

/** The size, time and inode of each file, to tell whether it changed. */
async function stampOf(files: readonly string[]): Promise<string> {
  const stats = await Promise.all(files.map((f) => stat(f).catch(() => undefined)));
  return stats.map((s) => (s ? `${s.size}:${s.mtimeMs}:${s.ino}` : 'missing')).join('/');
}
