import { stat } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { SecureContext } from 'node:tls';
import type { Registry } from '../registry/registry.js';
import type { HostRule } from '../registry/types.js';
import { CertificateError, secureContextOf } from '../util/certificates.js';
import { normaliseHostName } from '../util/host-name.js';
import type { Logger } from '../util/log.js';
import { readFailure, readRegularFile } from '../util/read-limited.js';

type SniCallback = (err: Error | null, ctx?: SecureContext) => void;

/** Certificates from an ACME CA (src/acme), consulted after a host's own files, before the default. */
export interface AcmeCertificates {
  /** At once when one is served; a promise while it is being ordered; undefined: the default. */
  contextFor(host: string, rule: HostRule): SecureContext | Promise<SecureContext | undefined> | undefined;
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
export class CertificateStore {
  private readonly contexts = new Map<string, Promise<SecureContext | undefined>>();
  private readonly failures = new Map<string, Failure>();

  constructor(
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly acme?: AcmeCertificates,
  ) {}

  readonly SNICallback = (servername: string, cb: SniCallback): void => {
    const host = normaliseHostName(servername);
    if (this.acme) {
      // Not cached here: a renewed certificate is served from the next handshake on.
      const route = this.registry.route(host);
      if (route && !route.rule.cert && route.rule.host === host) {
        const c = this.acme.contextFor(host, route.rule);
        if (c === undefined || !('then' in c)) cb(null, c);
        else
          c.then(
            (ctx) => cb(null, ctx),
            () => cb(null),
          );
        return;
      }
    }
    let ctx = this.contexts.get(host);
    if (!ctx) {
      ctx = this.load(host);
      this.contexts.set(host, ctx);
    }
    ctx.then(
      (c) => cb(null, c),
      () => cb(null),
    );
  };

  /** Forgets every loaded certificate and failure (the registry changed). */
  clear(): void {
    this.contexts.clear();
    this.failures.clear();
    this.acme?.registryChanged();
  }

  /** Why the host's own certificate is not served (the default one is), when it is not. */
  failure(host: string): string | undefined {
    return this.failures.get(host)?.why;
  }

  /**
   * Reads again the files of every host whose certificate was loaded or failed (SIGHUP). A host
   * whose new files cannot be used keeps the certificate it had, and the reason is logged.
   */
  async reload(): Promise<CertificateReload> {
    const hosts = [...new Set([...this.contexts.keys(), ...this.failures.keys()])];
    const result: CertificateReload = { reloaded: 0, failed: 0 };
    await Promise.all(
      hosts.map(async (host) => {
        const route = this.registry.route(host);
        if (!route?.rule.cert || !route.rule.key) return;
        const before = await this.contexts.get(host)?.catch(() => undefined);
        this.failures.delete(host);
        const ctx = await this.read(host, route.rule.cert, route.rule.key, route.app.id, !!before);
        if (ctx) {
          this.contexts.set(host, Promise.resolve(ctx));
          result.reloaded++;
        } else {
          result.failed++;
          if (before) this.contexts.set(host, Promise.resolve(before));
        }
      }),
    );
    return result;
  }

  private async load(host: string): Promise<SecureContext | undefined> {
    const route = this.registry.route(host);
    if (!route?.rule.cert || !route.rule.key) {
      // Unknown names are not cached: a client must not be able to grow the cache at will.
      if (!route) this.contexts.delete(host);
      return undefined;
    }
    const ctx = await this.read(host, route.rule.cert, route.rule.key, route.app.id);
    // Not cached as a failure: the next handshake looks whether the files changed meanwhile.
    if (!ctx) this.contexts.delete(host);
    return ctx;
  }

  /**
   * The host's context from its files, or undefined (logged once per change of the files);
   * `kept`: the host keeps the certificate it had (a reload), else it gets the default one.
   */
  private async read(host: string, certFile: string, keyFile: string, app: string, kept = false) {
    const files = [resolve(certFile), resolve(keyFile)] as const;
    const stamp = await stampOf(files);
    const failed = this.failures.get(host);
    if (failed && failed.stamp === stamp) return undefined;
    try {
      const [cert, key] = await Promise.all(files.map((f) => readRegularFile(f)));
      const ctx = secureContextOf(cert!, key!, certFile, keyFile);
      this.failures.delete(host);
      return ctx;
    } catch (err) {
      const why = err instanceof CertificateError ? err.message : readFailure(err);
      this.failures.set(host, { stamp, why });
      this.log.error(
        { app, host, err: why },
        `certificate of ${host} cannot be used (${why}); ${kept ? 'keeping the one it had' : 'serving the default one until its files change'}`,
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
