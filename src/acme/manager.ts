import { createSecureContext, type SecureContext } from 'node:tls';
import type { Registry } from '../registry/registry.js';
import type { HostRule } from '../registry/types.js';
import { every } from '../util/every.js';
import type { Logger } from '../util/log.js';
import { lifetimeRenewal, type RenewalSource } from './ari.js';
import { CertificateAuthority } from './ca.js';
import { backOffMs, caMessage, idOf, renewalFields, usableCertificate } from './certificate.js';
import { type ChallengeSolver, type ChallengeType, dnsSolver, storeSolver } from './challenges.js';
import type { DnsProvider } from './dns/provider.js';
import type { KeySeal } from './key-seal.js';
import { isWildcard, qualifies } from './qualify.js';
import type { AcmeStore, CertRecord } from './store.js';

export { LETS_ENCRYPT } from './directories.js';

const MINUTE = 60_000;

/** What the metrics count: orders by result, and each served certificate's expiry and renewal. */
export interface AcmeObserver {
  acmeOrder(result: 'success' | 'failure' | 'dropped'): void;
  certificateExpiry(host: string, notAfter: number | undefined): void;
  /** When the certificate served for `host` is to be renewed, and how that was chosen. */
  certificateRenewal?(host: string, renewal: { renewAt: number; source: RenewalSource } | undefined): void;
}

export interface AcmeOptions {
  email: string;
  directory: string;
  /** The challenge types offered to the CA for hosts, in order of preference. */
  challenges: ChallengeType[];
  /** DNS-01 (`--acme-dns`): where the records go, and how long their propagation is waited for (0: not checked). */
  dns?: { provider: DnsProvider; waitMs: number };
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
  /** Told of each certificate served from now on (a new one or a renewal): worker processes get it. */
  onServed?: (host: string, pem: CertificatePem) => void;
}

/** A certificate being served: its context and what renewal and the metrics need. */
interface Served {
  ctx: SecureContext;
  /** Its certificate and key (for worker processes, which build contexts of their own). */
  pem: CertificatePem;
  /** Its SHA-256 fingerprint, for HTTP/2 coalescing (which connection's certificate it is). */
  fingerprint: string;
  notBefore: number;
  notAfter: number;
  updatedAt: number;
  /** Its ARI id, sent as `replaces` when it is renewed (undefined: it has no authority key id). */
  certId: string | undefined;
  renewAt: number;
  renewalSource: RenewalSource;
  /** ARI: when the CA's window is asked for again. */
  checkAt: number | undefined;
}

/** A certificate and its private key, PEM. */
export interface CertificatePem {
  cert: string;
  key: string;
}

/** Why a host has no certificate (yet): the last failure, and when to try again. */
interface Failing {
  lastError: string;
  failures: number;
  retryAt: number;
}

/**
 * Certificates from an ACME CA for the registry's qualifying hosts (see qualify.ts), for one
 * node or a farm sharing the store: ordered in the background when hosts appear and at a
 * handshake that needs one, one order per host across the farm (under a lease), renewed in the
 * CA's ARI window (else at two thirds of their lifetime), retried with back-off, and picked up
 * from the store by every node. A wildcard host has one certificate, ordered with DNS-01.
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
  private readonly ca: CertificateAuthority;
  private readonly solvers: Partial<Record<ChallengeType, ChallengeSolver>>;
  /** The next round asks the CA for every served certificate's window (true at start). */
  private renewalsAtStart = true;
  private refreshing = false;
  private stopPoll: (() => void) | undefined;
  private stopped = false;

  constructor(
    private readonly store: AcmeStore,
    private readonly registry: Registry,
    private readonly log: Logger,
    private readonly options: AcmeOptions,
  ) {
    this.ca = new CertificateAuthority(options.directory, options.email, store, options.seal, log);
    const inStore = storeSolver(store);
    this.solvers = { 'http-01': inStore, 'tls-alpn-01': inStore };
    if (options.dns) this.solvers['dns-01'] = dnsSolver(options.dns.provider, options.dns.waitMs, log);
  }

  /** Reads what the store has (before the listeners open). Never throws: a store down is logged. */
  async load(): Promise<void> {
    await this.poll().catch((err: Error) => this.log.error(`acme: cannot read the store: ${err.message}`));
  }

  /**
   * Where TLS session ticket keys are kept, the same on every node sharing the store
   * (src/router/accepting/session-tickets.ts rotates and applies them).
   */
  get ticketKeySource(): { ticketKeys(period: number, fresh: Buffer): Promise<Buffer> } {
    return this.store;
  }

  /**
   * Starts the background work: orders for hosts that need one, and every poll the store read
   * again (certificates from other nodes, renewals due).
   */
  start(): void {
    const round = async () => {
      await this.poll().catch((err: Error) => this.log.warn(`acme: cannot read the store: ${err.message}`));
      void this.refreshRenewals();
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
        this.options.observer?.certificateRenewal?.(host, undefined);
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

  /** The certificate served for `host` now, as PEM (a worker process asks for it). */
  certificateOf(host: string): CertificatePem | undefined {
    return this.served.get(host)?.pem;
  }

  /** Why the last order for `host` failed, and when it is tried again, while it is in back-off. */
  orderFailure(host: string): string | undefined {
    const f = this.failing.get(host);
    return f && `${f.lastError}; next try at ${new Date(f.retryAt).toISOString()}`;
  }

  /** The fingerprint of the certificate served for `host` (a rule's host), if one is. */
  fingerprintFor(host: string): string | undefined {
    return this.served.get(host)?.fingerprint;
  }

  /** The key authorization for an HTTP-01 token of `host`, if an order of the farm waits for it. */
  async httpChallenge(host: string, token: string): Promise<string | undefined> {
    if (!this.options.challenges.includes('http-01')) return undefined;
    const r = await this.store.challenge('http-01', token);
    return r && r.host === host ? r.value : undefined;
  }

  /** The TLS-ALPN-01 challenge certificate for `host`, if an order of the farm waits for it. */
  async alpnChallenge(host: string): Promise<SecureContext | undefined> {
    const pem = await this.alpnChallengePem(host);
    return pem && createSecureContext(pem);
  }

  /** The same, as PEM (for worker processes). */
  async alpnChallengePem(host: string): Promise<CertificatePem | undefined> {
    if (!this.options.challenges.includes('tls-alpn-01') || !this.registry.route(host)) return undefined;
    const r = await this.store.challenge('tls-alpn-01', host);
    return r?.key ? { cert: r.value, key: r.key } : undefined;
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
    if (s && now < s.renewAt && !this.reorder.has(host)) return false;
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
      const replaces = await this.replaces(host);
      log.info(
        `acme: ordering a certificate for ${host}${replaces ? ` (a renewal, replaces ${replaces})` : ''}`,
      );
      const { cert, key } = await this.ca.order({
        name: host,
        challenges: this.challengesFor(host),
        solvers: this.solvers,
        replaces,
      });
      if (!this.wanted(host)) {
        // Removed (or given its own files, or "acme": false) while the order ran.
        log.warn(
          `acme: ${host} left the registry while its certificate was ordered; the certificate is dropped`,
        );
        options.observer?.acmeOrder('dropped');
        return;
      }
      const { x509 } = usableCertificate(host, cert, key);
      const notBefore = Date.parse(x509.validFrom);
      const notAfter = Date.parse(x509.validTo);
      const renewal = await this.ca.renewal(cert, notBefore, notAfter);
      const record: CertRecord = {
        host,
        cert,
        key: options.seal.seal(key),
        notBefore,
        notAfter,
        issuer: x509.issuer.replace(/\n/g, ', '),
        serial: x509.serialNumber,
        ...renewalFields(renewal),
        updatedAt: Date.now(),
      };
      await store.putCert(record);
      this.failing.delete(host);
      this.absorb(record);
      options.observer?.acmeOrder('success');
      log.info(
        `acme: certificate for ${host} obtained (serial ${record.serial}, valid until ${x509.validTo}; renews at ${new Date(renewal.renewAt).toISOString()}, ${renewal.source})`,
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

  /** The challenge types for `host`'s order: DNS-01 alone for a wildcard, else those configured. */
  private challengesFor(host: string): ChallengeType[] {
    if (!isWildcard(host)) return this.options.challenges;
    if (!this.options.dns) throw new Error(`a wildcard host needs DNS-01: start arr with --acme-dns`);
    return ['dns-01'];
  }

  /** The ARI id of the certificate an order for `host` renews, when the CA has ARI. */
  private async replaces(host: string): Promise<string | undefined> {
    const id = this.served.get(host)?.certId;
    if (!id) return undefined;
    return (await this.ca.hasRenewalInfo().catch(() => false)) ? id : undefined;
  }

  /**
   * Asks the CA (ARI) again for the renewal window of each served certificate whose time has
   * come (every one at start), one node per certificate (under its lease); the time picked is
   * stored for `arr certs` and the other nodes.
   */
  private async refreshRenewals(): Promise<void> {
    if (this.refreshing || this.stopped) return;
    this.refreshing = true;
    const all = this.renewalsAtStart;
    this.renewalsAtStart = false;
    try {
      const now = Date.now();
      for (const [host, s] of this.served) {
        if (this.stopped) break;
        if (all || (s.checkAt !== undefined && s.checkAt <= now)) await this.refreshRenewal(host, all);
      }
    } finally {
      this.refreshing = false;
    }
  }

  private async refreshRenewal(host: string, force: boolean): Promise<void> {
    const { store, options, log } = this;
    if (this.running.has(host)) return;
    let leased = false;
    try {
      leased = await store.takeLease(host, options.node, options.leaseMs ?? 10 * MINUTE);
      if (!leased) return;
      const record = await store.cert(host);
      if (!record?.cert) return;
      if (!force && (record.ariCheckAt ?? 0) > Date.now()) {
        // Another node asked meanwhile.
        this.absorb(record);
        return;
      }
      const previous =
        record.renewAt === undefined
          ? undefined
          : { renewAt: record.renewAt, source: record.renewalSource ?? 'lifetime' };
      const renewal = await this.ca.renewal(
        record.cert,
        record.notBefore ?? 0,
        record.notAfter ?? 0,
        previous,
      );
      const updated: CertRecord = { ...record, ...renewalFields(renewal) };
      await store.putCert(updated);
      if (record.renewAt !== updated.renewAt)
        log.info(`acme: ${host} renews at ${new Date(renewal.renewAt).toISOString()} (${renewal.source})`);
      this.absorb(updated);
    } catch (err) {
      log.warn(`acme: cannot refresh the renewal time of ${host}: ${(err as Error).message}`);
    } finally {
      if (leased) await store.releaseLease(host, options.node).catch(() => {});
    }
    // A window already past: renewed now (the order takes the lease just let go).
    if (leased && this.due(host)) this.enqueue(host);
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
    if (s && s.updatedAt === r.updatedAt) {
      this.takeRenewal(host, s, r);
      return;
    }
    if (this.unusable.get(host) === r.updatedAt) return;
    try {
      const pem = { cert: r.cert, key: this.options.seal.open(r.key) };
      const { ctx, x509 } = usableCertificate(host, pem.cert, pem.key);
      const notBefore = Date.parse(x509.validFrom);
      const notAfter = Date.parse(x509.validTo);
      const lifetime = lifetimeRenewal(notBefore, notAfter);
      const served: Served = {
        ctx,
        pem,
        fingerprint: x509.fingerprint256,
        notBefore,
        notAfter,
        updatedAt: r.updatedAt,
        certId: idOf(r.cert),
        renewAt: lifetime.renewAt,
        renewalSource: lifetime.source,
        checkAt: undefined,
      };
      this.served.set(host, served);
      this.options.onServed?.(host, pem);
      this.unusable.delete(host);
      this.reorder.delete(host);
      if (!r.lastError) this.failing.delete(host);
      this.options.observer?.certificateExpiry(host, notAfter);
      this.takeRenewal(host, served, r);
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

  /** The renewal time a record carries (else two thirds of the lifetime, as set). */
  private takeRenewal(host: string, s: Served, r: CertRecord): void {
    if (r.renewAt !== undefined) {
      s.renewAt = r.renewAt;
      s.renewalSource = r.renewalSource ?? 'lifetime';
      s.checkAt = r.ariCheckAt;
    }
    this.options.observer?.certificateRenewal?.(host, { renewAt: s.renewAt, source: s.renewalSource });
  }
}
