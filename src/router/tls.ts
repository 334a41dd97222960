import { resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Registry } from '../registry/registry.js';
import type { HostRule, Route } from '../registry/types.js';
import { normaliseHostName } from '../util/host-name.js';
import type { Logger } from '../util/log.js';
import { readFailure, readRegularFile } from '../util/read-limited.js';

type SniCallback = (err: Error | null, ctx?: SecureContext) => void;

/** Certificates from an ACME CA (src/acme), consulted after a host's own files, before the default. */
export interface AcmeCertificates {
  /**
   * The certificate of `host`, a host of the registry (a wildcard's own name for the names under
   * it): at once when one is served; a promise while it is being ordered; undefined: the default.
   */
  contextFor(host: string, rule: HostRule): SecureContext | Promise<SecureContext | undefined> | undefined;
  /** The registry changed: hosts that appeared are ordered, those that left forgotten. */
  registryChanged(): void;
}

/**
 * Per-host certificates for SNI. A host's certificate is read when its first handshake comes
 * and kept, so thousands of hosts cost nothing until they are used. A host without its own
 * certificate (or whose files cannot be used) gets the default one.
 */
export class CertificateStore {
  private readonly contexts = new Map<string, Promise<SecureContext | undefined>>();

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

  /** Forgets every loaded certificate (the registry changed). */
  clear(): void {
    this.contexts.clear();
    this.acme?.registryChanged();
  }

  private async load(route: Route): Promise<SecureContext | undefined> {
    const { rule, app } = route;
    if (!rule.cert || !rule.key) return undefined;
    try {
      const [cert, key] = await Promise.all([
        readRegularFile(resolve(rule.cert)),
        readRegularFile(resolve(rule.key)),
      ]);
      return createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
    } catch (err) {
      this.log.error(
        { app: app.id, host: rule.host, err: readFailure(err) },
        `certificate of ${rule.host} cannot be used; serving the default one`,
      );
      return undefined;
    }
  }
}
