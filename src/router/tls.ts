import { resolve } from 'node:path';
import { createSecureContext, type SecureContext } from 'node:tls';
import type { Registry } from '../registry/registry.js';
import { normaliseHostName } from '../util/host-name.js';
import type { Logger } from '../util/log.js';
import { readFailure, readRegularFile } from '../util/read-limited.js';

type SniCallback = (err: Error | null, ctx?: SecureContext) => void;

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
  ) {}

  readonly SNICallback = (servername: string, cb: SniCallback): void => {
    const host = normaliseHostName(servername);
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
