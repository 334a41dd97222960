import { createPrivateKey, randomBytes, X509Certificate } from 'node:crypto';
import { createSecureContext, type SecureContext } from 'node:tls';
import acme from 'acme-client';
import type { Registry } from '../registry/registry.js';
import type { HostRule } from '../registry/types.js';
import { every } from '../util/every.js';
import type { Logger } from '../util/log.js';
import type { KeySeal } from './key-seal.js';
import { qualifies } from './qualify.js';
import type { AcmeStore, CertRecord, ChallengeKind } from './store.js';

/**
 * The protocol is acme-client's (npm `acme-client`: ACME v2 / RFC 8555, maintained, typed, used
 * widely; it retries badNonce itself and makes the TLS-ALPN-01 certificate). Compared: writing
 * the JWS/nonce/polling dance by hand (a lot of subtle code for no gain) and `greenlock`
 * (unmaintained since 2020, its own storage plugins). See docs/acme.md.
 */

export { LETS_ENCRYPT } from './directories.js';

const MINUTE = 60_000;
const DAY = 24 * 60 * MINUTE;
const TICKET_PERIOD_MS = 12 * 60 * MINUTE;

/** What the metrics count: orders by result, and each served certificate's expiry. */
export interface AcmeObserver {
  acmeOrder(result: 'success' | 'failure' | 'dropped'): void;
  certificateExpiry(host: string, notAfter: number | undefined): void;
}

export interface AcmeOptions {
  email: string;
  directory: string;
  /** The challenge types offered to the CA, in order of preference. */
  challenges: ChallengeKind[];
  /** Who holds a lease: this node (its advertised address and ports). */
  node: string;
  /** How often the store is read for certificates other nodes obtained, and renewals looked for. */
  pollMs: number;
  seal: KeySeal;
  /** Orders placed at once by this node (default 3). */
  concurrency?: number;
  /** How long a handshake for a host without a certificate waits for its order (default 10 s). */
  onDemandWaitMs?: number;
  /** How long a lease holds when its node dies mid-order (default 10 min). */
  leaseMs?: number;
  observer?: AcmeObserver;
}

/** A certificate being served: its context and what renewal and the metrics need. */
interface Served {
  ctx: SecureContext;
  notBefore: number;
  notAfter: number;
  updatedAt: number;
}

/** Why a host has no certificate (yet): the last failure, and when to try again. */
interface Failing {
  lastError: string;
  failures: number;
  retryAt: number;
}

/** When a certificate is renewed: at two thirds of its lifetime. */
export function renewAt(notBefore: number, notAfter: number): number {
  return notBefore + ((notAfter - notBefore) * 2) / 3;
}

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

/**
 * Certificates from an ACME CA for the registry's qualifying hosts (see qualify.ts), for one
 * node or a farm sharing the store: ordered in the background when hosts appear and at a
 * handshake that needs one, one order per host across the farm (under a lease), renewed at two
 * thirds of their lifetime, retried with back-off, and picked up from the store by every node.
 */
export class AcmeManager {
  private readonly served = new Map<string, Served>();
  private readonly failing = new Map<string, Failing>();
  /** Records that could not be used, by host and version: logged once each. */
  private readonly unusable = new Map<string, number>();
  /** Hosts whose stored certificate is unusable: ordered again even while an older one is served. */
  private readonly reorder = new Set<string>();
  private readonly queue: string[] = [];
  private readonly queued = new Set<string>();
  private readonly running = new Map<string, Promise<void>>();
  private readonly waiters = new Map<string, (() => void)[]>();
  private client: Promise<acme.Client> | undefined;
  private stopPoll: (() => void) | undefined;
  private ticketPeriod = -1;
  /** The current period's ticket keys, once read; applied by `start` before the first handshake. */
  private tickets: Buffer | undefined;
  private stopped = false;

  constructor(
    private readonly store: AcmeStore,
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly options: AcmeOptions,
  ) {
    // A CA that accepts a connection and never answers must not hold an order forever.
    acme.axios.defaults.timeout = 30_000;
    // acme-client retries a failed request (network error, 429, 5xx) five times, waiting up to
    // 25 s (or the CA's Retry-After) between: once here, soon; arr's own back-off (a minute up
    // to a day, shared by the farm) does the rest. badNonce is retried apart from this.
    const settings = (acme.axios.defaults as { acmeSettings?: Record<string, number> }).acmeSettings;
    if (settings) {
      settings.retryMaxAttempts = 1;
      settings.retryDefaultDelay = 1;
    }
  }

  /** Reads what the store has (before the listeners open). Never throws: a store down is logged. */
  async load(): Promise<void> {
    await this.poll().catch((err: Error) => this.log.error(`acme: cannot read the store: ${err.message}`));
    await this.rotateTickets(() => {});
  }

  /**
   * Starts the background work: orders for hosts that need one, and every poll the store read
   * again (certificates from other nodes, renewals due) and the ticket keys kept current.
   */
  start(onTicketKeys?: (keys: Buffer) => void): void {
    if (onTicketKeys && this.tickets) onTicketKeys(this.tickets);
    const round = async () => {
      await this.poll().catch((err: Error) => this.log.warn(`acme: cannot read the store: ${err.message}`));
      if (onTicketKeys) await this.rotateTickets(onTicketKeys);
      this.scan();
    };
    void round();
    this.stopPoll = every(this.options.pollMs, round);
  }

  stop(): void {
    this.stopped = true;
    this.stopPoll?.();
  }

  /** After stop: the store's connection closed (orders under way are abandoned; their leases expire). */
  async close(): Promise<void> {
    await this.store.close().catch(() => {});
  }

  /** The registry changed: hosts that appeared are ordered now, not at the next poll. */
  registryChanged(): void {
    for (const host of this.served.keys()) {
      if (!this.wanted(host)) {
        this.served.delete(host);
        this.options.observer?.certificateExpiry(host, undefined);
      }
    }
    this.scan();
  }

  /**
   * The certificate to present for `host` (the route's rule): at once when one is served (an
   * old one until its renewal arrives); for a qualifying host without one, its order, waited for
   * up to the on-demand bound; undefined: the default certificate.
   */
  contextFor(host: string, rule: HostRule): SecureContext | Promise<SecureContext | undefined> | undefined {
    const s = this.served.get(host);
    if (s) return s.ctx;
    if (!qualifies(rule) || !this.due(host)) return undefined;
    const done = new Promise<void>((resolve) => {
      const list = this.waiters.get(host) ?? [];
      list.push(resolve);
      this.waiters.set(host, list);
    });
    this.enqueue(host);
    const bound = new Promise<void>((resolve) =>
      setTimeout(resolve, this.options.onDemandWaitMs ?? 10_000).unref(),
    );
    return Promise.race([done, bound]).then(() => this.served.get(host)?.ctx);
  }

  /** The key authorization for an HTTP-01 token of `host`, if an order of the farm waits for it. */
  async httpChallenge(host: string, token: string): Promise<string | undefined> {
    if (!this.options.challenges.includes('http-01')) return undefined;
    const r = await this.store.challenge('http-01', token);
    return r && r.host === host ? r.value : undefined;
  }

  /** The TLS-ALPN-01 challenge certificate for `host`, if an order of the farm waits for it. */
  async alpnChallenge(host: string): Promise<SecureContext | undefined> {
    if (!this.options.challenges.includes('tls-alpn-01') || !this.registry.route(host)) return undefined;
    const r = await this.store.challenge('tls-alpn-01', host);
    if (!r?.key) return undefined;
    return createSecureContext({ cert: r.value, key: r.key });
  }

  /** Whether `host` is (still) one arr should hold a certificate for. */
  private wanted(host: string): boolean {
    const route = this.registry.route(host);
    return route !== undefined && route.rule.host === host && qualifies(route.rule);
  }

  /** Whether an order for `host` should go now: none served or renewal due, and not in back-off. */
  private due(host: string): boolean {
    const s = this.served.get(host);
    const now = Date.now();
    if (s && now < renewAt(s.notBefore, s.notAfter) && !this.reorder.has(host)) return false;
    const f = this.failing.get(host);
    return !f || f.retryAt <= now;
  }

  private scan(): void {
    if (this.stopped) return;
    for (const app of this.registry.apps())
      for (const rule of app.hosts) if (qualifies(rule) && this.due(rule.host)) this.enqueue(rule.host);
  }

  private enqueue(host: string): void {
    if (this.stopped || this.queued.has(host) || this.running.has(host)) return;
    this.queued.add(host);
    this.queue.push(host);
    this.pump();
  }

  private pump(): void {
    const limit = this.options.concurrency ?? 3;
    while (!this.stopped && this.running.size < limit && this.queue.length > 0) {
      const host = this.queue.shift()!;
      this.queued.delete(host);
      const p = this.order(host).finally(() => {
        this.running.delete(host);
        for (const w of this.waiters.get(host) ?? []) w();
        this.waiters.delete(host);
        this.pump();
      });
      this.running.set(host, p);
    }
  }

  /** One order for `host`, under the farm-wide lease; failures are recorded for back-off. */
  private async order(host: string): Promise<void> {
    const { store, options, log } = this;
    let leased = false;
    try {
      leased = await store.takeLease(host, options.node, options.leaseMs ?? 10 * MINUTE);
      // Another node orders it; the poll brings its result.
      if (!leased) return;
      // It may have finished just before the lease was taken.
      const had = await store.cert(host);
      if (had) this.absorb(had);
      if (!this.due(host) || !this.wanted(host)) return;
      log.info(`acme: ordering a certificate for ${host}`);
      const { cert, key } = await this.obtain(host);
      if (!this.wanted(host)) {
        // Removed (or given its own files, or "acme": false) while the order ran.
        log.warn(
          `acme: ${host} left the registry while its certificate was ordered; the certificate is dropped`,
        );
        options.observer?.acmeOrder('dropped');
        return;
      }
      const { x509 } = usableCertificate(host, cert, key);
      const record: CertRecord = {
        host,
        cert,
        key: options.seal.seal(key),
        notBefore: Date.parse(x509.validFrom),
        notAfter: Date.parse(x509.validTo),
        issuer: x509.issuer.replace(/\n/g, ', '),
        serial: x509.serialNumber,
        updatedAt: Date.now(),
      };
      await store.putCert(record);
      this.failing.delete(host);
      this.absorb(record);
      options.observer?.acmeOrder('success');
      log.info(
        `acme: certificate for ${host} obtained (serial ${record.serial}, valid until ${x509.validTo})`,
      );
    } catch (err) {
      await this.failed(host, err);
    } finally {
      if (leased) await store.releaseLease(host, options.node).catch(() => {});
    }
  }

  private async failed(host: string, err: unknown): Promise<void> {
    const message = caMessage(err);
    const failures = (this.failing.get(host)?.failures ?? 0) + 1;
    const wait = backOffMs(failures);
    const f: Failing = { lastError: message, failures, retryAt: Date.now() + wait };
    this.failing.set(host, f);
    this.options.observer?.acmeOrder('failure');
    this.log.error(
      { host, failures },
      `acme: the order for ${host} failed: ${message}; next try in ${Math.round(wait / 1000)} s`,
    );
    // For `arr certs` and the other nodes (which then do not try before retryAt either).
    try {
      const prev = await this.store.cert(host).catch(() => undefined);
      await this.store.putCert({ ...prev, host, ...f, updatedAt: prev?.updatedAt ?? 0 });
    } catch {
      // The store is down too: the back-off holds on this node.
    }
  }

  /** The order itself (acme-client's auto mode): account, order, challenges, finalize. */
  private async obtain(host: string): Promise<{ cert: string; key: string }> {
    const client = await this.account();
    const key = await acme.crypto.createPrivateEcdsaKey();
    const [, csr] = await acme.crypto.createCsr({ commonName: host, altNames: [host] }, key);
    const cert = await client.auto({
      csr,
      email: this.options.email,
      termsOfServiceAgreed: true,
      // acme-client's own pre-check resolves the name from here: the CA's view is what counts.
      skipChallengeVerification: true,
      challengePriority: this.options.challenges,
      challengeCreateFn: async (authz, challenge, keyAuthorization) => {
        const expires = Date.now() + 10 * MINUTE;
        const name = authz.identifier.value;
        if (challenge.type === 'http-01') {
          const token = (challenge as { token: string }).token;
          await this.store.putChallenge({
            kind: 'http-01',
            name: token,
            host: name,
            value: keyAuthorization,
            expires,
          });
        } else if ((challenge.type as string) === 'tls-alpn-01') {
          const [k, c] = await acme.crypto.createAlpnCertificate(
            authz,
            keyAuthorization,
            await acme.crypto.createPrivateEcdsaKey(),
          );
          await this.store.putChallenge({
            kind: 'tls-alpn-01',
            name,
            host: name,
            value: c.toString(),
            key: k.toString(),
            expires,
          });
        } else {
          throw new Error(`the CA offers no challenge of the types in use (${challenge.type})`);
        }
      },
      challengeRemoveFn: async (authz, challenge) => {
        if (challenge.type === 'http-01')
          await this.store.deleteChallenge('http-01', (challenge as { token: string }).token);
        else if ((challenge.type as string) === 'tls-alpn-01')
          await this.store.deleteChallenge('tls-alpn-01', authz.identifier.value);
      },
    });
    return { cert, key: key.toString() };
  }

  /** The ACME client with the farm's account at this CA (made once, by whichever node comes first). */
  private account(): Promise<acme.Client> {
    this.client ??= (async () => {
      const { store, options } = this;
      let record = await store.account(options.directory);
      if (!record) {
        const fresh = (await acme.crypto.createPrivateEcdsaKey()).toString();
        record = await store.putAccountOnce({ directory: options.directory, key: options.seal.seal(fresh) });
      }
      // Polls of a pending order: from 1 s (the CA usually validates within seconds) up to 10 s.
      return new acme.Client({
        directoryUrl: options.directory,
        accountKey: options.seal.open(record.key),
        backoffMin: 1000,
        backoffMax: 10_000,
      });
    })();
    // A failure (store or CA down) is not kept: the next order tries again.
    this.client.catch(() => {
      this.client = undefined;
    });
    return this.client;
  }

  /** Reads every record: certificates obtained elsewhere, back-offs, removed hosts. */
  private async poll(): Promise<void> {
    const records = await this.store.certs();
    for (const r of records) if (this.wanted(r.host)) this.absorb(r);
  }

  /** Takes a stored record in: its certificate served if usable, its failure state kept. */
  private absorb(r: CertRecord): void {
    const host = r.host;
    if (r.lastError && r.retryAt && r.retryAt > (this.failing.get(host)?.retryAt ?? 0))
      this.failing.set(host, { lastError: r.lastError, failures: r.failures ?? 1, retryAt: r.retryAt });
    if (!r.cert || !r.key) return;
    const s = this.served.get(host);
    if (s && s.updatedAt === r.updatedAt) return;
    if (this.unusable.get(host) === r.updatedAt) return;
    try {
      const { ctx, x509 } = usableCertificate(host, r.cert, this.options.seal.open(r.key));
      const notAfter = Date.parse(x509.validTo);
      this.served.set(host, { ctx, notBefore: Date.parse(x509.validFrom), notAfter, updatedAt: r.updatedAt });
      this.unusable.delete(host);
      this.reorder.delete(host);
      if (!r.lastError) this.failing.delete(host);
      this.options.observer?.certificateExpiry(host, notAfter);
    } catch (err) {
      // Damaged, expired, for another name or with a key that cannot be opened: not served,
      // and ordered again (a served older one stays until then).
      this.unusable.set(host, r.updatedAt);
      this.reorder.add(host);
      this.log.error(
        `acme: the stored certificate of ${host} cannot be used (${(err as Error).message}); ordering a new one`,
      );
    }
  }

  /** Session ticket keys of the current 12-hour period, the same on every node sharing the store. */
  private async rotateTickets(apply: (keys: Buffer) => void): Promise<void> {
    const period = Math.floor(Date.now() / TICKET_PERIOD_MS);
    if (period === this.ticketPeriod) return;
    try {
      this.tickets = await this.store.ticketKeys(period, randomBytes(48));
      this.ticketPeriod = period;
      apply(this.tickets);
    } catch (err) {
      this.log.warn(`acme: cannot read the session ticket keys: ${(err as Error).message}`);
    }
  }
}

/**
 * What a failed order is logged and shown with: the CA's problem detail when it sent one
 * (acme-client puts it in the message), else the error's own message; one line, bounded.
 */
function caMessage(err: unknown): string {
  const text = err instanceof Error ? err.message : String(err);
  return text.replace(/\s+/g, ' ').slice(0, 400) || 'unknown error';
}
