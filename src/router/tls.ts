import { resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Registry } from '../registry/registry.js';
import type { HostRule } from '../registry/types.js';
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

  /** Forgets every loaded certificate (the registry changed). */
  clear(): void {
    this.contexts.clear();
    this.acme?.registryChanged();
  }

  private async load(host: string): Promise<SecureContext | undefined> {
    const route = this.registry.route(host);
    if (!route?.rule.cert || !route.rule.key) {
      // Unknown names are not cached: a client must not be able to grow the cache at will.
      if (!route) this.contexts.delete(host);
      return undefined;
    }
    try {
      const [cert, key] = await Promise.all([
        readRegularFile(resolve(route.rule.cert)),
        readRegularFile(resolve(route.rule.key)),
      ]);
      return createSecureContext({ cert, key, minVersion: 'TLSv1.2' });
    } catch (err) {
      this.log.error(
        { app: route.app.id, host, err: readFailure(err) },
        `certificate of ${host} cannot be used; serving the default one`,
      );
      return undefined;
    }
  }
}
