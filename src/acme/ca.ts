import acme from 'acme-client';
import type { Logger } from '../util/log.js';
import { certificateId, lifetimeRenewal, type Renewal, renewalInWindow, retryAfterMs } from './ari.js';
import type { ChallengeSolver, ChallengeType } from './challenges.js';
import type { KeySeal } from './key-seal.js';
import type { AcmeStore } from './store.js';
import { CaUnreachable, reportUnreachableCa } from './unreachable.js';

/**
 * The protocol is acme-client's (npm `acme-client`: ACME v2 / RFC 8555, maintained, typed, used
 * widely; it retries badNonce itself and makes the TLS-ALPN-01 certificate). Its `auto()` is not
 * used: the order is placed here with its primitives, so that it can carry ARI's `replaces` and
 * wait for DNS-01 records. ARI itself (RFC 9773) is a plain GET. See docs/acme.md.
 */

/** One certificate to order: its name (a host, or `*.example.com`), how, and what it replaces. */
export interface OrderRequest {
  name: string;
  /** The challenge types to use, in order of preference. */
  challenges: ChallengeType[];
  solvers: Partial<Record<ChallengeType, ChallengeSolver>>;
  /** The ARI id of the certificate this one renews (sent when the CA has ARI). */
  replaces?: string;
}

const HOUR = 60 * 60_000;

/** RFC 8555 §6.1: every request says who sends it (Pebble refuses those that do not). */
const USER_AGENT = 'arr (acme-client)';

export class CertificateAuthority {
  private client: Promise<acme.Client> | undefined;
  private directory: Promise<{ renewalInfo?: string }> | undefined;

  constructor(
    private readonly directoryUrl: string,
    private readonly email: string,
    private readonly store: AcmeStore,
    private readonly seal: KeySeal,
    private readonly log: Logger,
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
    reportUnreachableCa();
  }

  /** Whether the CA's directory offers ARI (RFC 9773). */
  async hasRenewalInfo(): Promise<boolean> {
    return (await this.directoryDoc()).renewalInfo !== undefined;
  }

  /**
   * When to renew the certificate `certPem` (valid from `notBefore` to `notAfter`): in the CA's
   * suggested window when it has ARI, else at two thirds of its lifetime. When the CA's answer
   * cannot be had or used, the `previous` time stands (else the lifetime's), asked again within
   * the hour.
   */
  async renewal(certPem: string, notBefore: number, notAfter: number, previous?: Renewal): Promise<Renewal> {
    const now = Date.now();
    const fallback = () => ({ ...(previous ?? lifetimeRenewal(notBefore, notAfter)), checkAt: now + HOUR });
    let base: string | undefined;
    try {
      base = (await this.directoryDoc()).renewalInfo;
    } catch (err) {
      this.log.warn(`acme: cannot read the CA's directory (${(err as Error).message})`);
      return fallback();
    }
    if (base === undefined) return lifetimeRenewal(notBefore, notAfter);
    try {
      const res = await getJson(`${base.replace(/\/$/, '')}/${certificateId(certPem)}`);
      const window = (res.body as { suggestedWindow?: { start?: unknown; end?: unknown } }).suggestedWindow;
      const renewAt = renewalInWindow(window, now);
      return { renewAt, source: 'ari', checkAt: now + retryAfterMs(res.retryAfter, now) };
    } catch (err) {
      this.log.warn(
        `acme: the CA's renewal information cannot be used (${(err as Error).message}); asked again within the hour`,
      );
      return fallback();
    }
  }

  /**
   * One order, placed and seen through: the certificate chain (PEM) and its new key (PEM). A CA
   * that does not answer is named by its directory URL, with the network error.
   */
  async order(request: OrderRequest): Promise<{ cert: string; key: string }> {
    try {
      return await this.placeOrder(request);
    } catch (err) {
      if (err instanceof CaUnreachable)
        throw new Error(`the CA at ${this.directoryUrl} cannot be reached (${err.detail})`);
      throw err;
    }
  }

  private async placeOrder(request: OrderRequest): Promise<{ cert: string; key: string }> {
    const client = await this.account();
    const key = await acme.crypto.createPrivateEcdsaKey();
    const [, csr] = await acme.crypto.createCsr({ commonName: request.name, altNames: [request.name] }, key);
    const identifiers = [{ type: 'dns', value: request.name }];
    let order: acme.Order;
    try {
      order = await client.createOrder({
        identifiers,
        ...(request.replaces ? { replaces: request.replaces } : {}),
      });
    } catch (err) {
      if (!request.replaces) throw err;
      // The CA may refuse the replacement (already replaced, unknown to it): a plain order then.
      this.log.warn(
        `acme: the CA refused the order for ${request.name} as a replacement (${(err as Error).message}); ordering it anew`,
      );
      order = await client.createOrder({ identifiers });
    }
    const authorizations = await client.getAuthorizations(order);
    await Promise.all(authorizations.map((authz) => this.authorize(client, authz, request)));
    const finalized = await client.finalizeOrder(order, csr);
    return { cert: await client.getCertificate(finalized), key: key.toString() };
  }

  /** One authorization: the preferred challenge the CA offers, answered, validated, cleaned up. */
  private async authorize(
    client: acme.Client,
    authz: acme.Authorization,
    request: OrderRequest,
  ): Promise<void> {
    if (authz.status === 'valid') return;
    const challenge = request.challenges
      .map((type) => authz.challenges.find((c) => c.type === type))
      .find((c) => c !== undefined);
    if (!challenge)
      throw new Error(
        `the CA offers no challenge of the types in use (${request.challenges.join(', ')}) for ${authz.identifier.value}`,
      );
    const solver = request.solvers[challenge.type as ChallengeType]!;
    const keyAuthorization = await client.getChallengeKeyAuthorization(challenge);
    let completed = false;
    try {
      await solver.present(authz, challenge, keyAuthorization);
      await client.completeChallenge(challenge);
      completed = true;
      await client.waitForValidStatus(challenge);
    } catch (err) {
      // A pending authorization left behind would be reused as it is by the next order.
      if (!completed) await client.deactivateAuthorization(authz).catch(() => {});
      throw err;
    } finally {
      await solver.cleanup(authz, challenge, keyAuthorization).catch((err: Error) => {
        this.log.warn(
          `acme: cleaning up the ${challenge.type} challenge of ${authz.identifier.value} failed: ${err.message}`,
        );
      });
    }
  }

  private directoryDoc(): Promise<{ renewalInfo?: string }> {
    this.directory ??= getJson(this.directoryUrl).then((res) => res.body as { renewalInfo?: string });
    // A failure is not kept: the next call asks again.
    this.directory.catch(() => {
      this.directory = undefined;
    });
    return this.directory;
  }

  /** The ACME client with the farm's account at this CA (made once, by whichever node comes first). */
  private account(): Promise<acme.Client> {
    this.client ??= (async () => {
      const { store, seal } = this;
      let record = await store.account(this.directoryUrl);
      if (!record) {
        const fresh = (await acme.crypto.createPrivateEcdsaKey()).toString();
        record = await store.putAccountOnce({ directory: this.directoryUrl, key: seal.seal(fresh) });
      }
      // Polls of a pending order: from 1 s (the CA usually validates within seconds) up to 10 s.
      const client = new acme.Client({
        directoryUrl: this.directoryUrl,
        accountKey: seal.open(record.key),
        backoffMin: 1000,
        backoffMax: 10_000,
      });
      await client.createAccount({ termsOfServiceAgreed: true, contact: [`mailto:${this.email}`] });
      return client;
    })();
    // A failure (store or CA down) is not kept: the next order tries again.
    this.client.catch(() => {
      this.client = undefined;
    });
    return this.client;
  }
}

/** GET of a JSON document of the CA (the directory, ARI): its body and Retry-After, or why not. */
async function getJson(url: string): Promise<{ body: unknown; retryAfter: string | undefined }> {
  let res: Response;
  try {
    res = await fetch(url, { headers: { 'user-agent': USER_AGENT }, signal: AbortSignal.timeout(30_000) });
  } catch (err) {
    const cause = (err as { cause?: Error }).cause;
    throw new Error(`GET ${url}: ${cause?.message ?? (err as Error).message}`);
  }
  if (res.status !== 200) throw new Error(`GET ${url}: HTTP ${res.status}`);
  return { body: await res.json(), retryAfter: res.headers.get('retry-after') ?? undefined };
}
