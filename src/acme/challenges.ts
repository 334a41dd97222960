import acme from 'acme-client';
import type { Logger } from '../util/log.js';
import { waitForTxt } from './dns/propagation.js';
import type { DnsProvider } from './dns/provider.js';
import type { AcmeStore } from './store.js';

/** The challenge types arr answers (RFC 8555 §8.3, §8.4; RFC 8737). */
export type ChallengeType = 'http-01' | 'tls-alpn-01' | 'dns-01';

/** What an order asks of the side that proves control of a name, for one challenge type. */
export interface ChallengeSolver {
  /** Makes `keyAuthorization` answerable for `authz`'s name, before the CA is asked to validate. */
  present(
    authz: acme.Authorization,
    challenge: { type: string; token?: string },
    keyAuthorization: string,
  ): Promise<void>;
  /** Takes it away again, after the validation (whatever its outcome). */
  cleanup(
    authz: acme.Authorization,
    challenge: { type: string; token?: string },
    keyAuthorization: string,
  ): Promise<void>;
}

const CHALLENGE_LIFETIME_MS = 10 * 60_000;

/**
 * HTTP-01 and TLS-ALPN-01: the answers are put in the store, where every node of the farm
 * finds them (the CA may ask any node behind the balancer).
 */
export function storeSolver(store: AcmeStore): ChallengeSolver {
  return {
    async present(authz, challenge, keyAuthorization) {
      const expires = Date.now() + CHALLENGE_LIFETIME_MS;
      const name = authz.identifier.value;
      if (challenge.type === 'http-01') {
        await store.putChallenge({
          kind: 'http-01',
          name: challenge.token!,
          host: name,
          value: keyAuthorization,
          expires,
        });
      } else {
        const [k, c] = await acme.crypto.createAlpnCertificate(
          authz,
          keyAuthorization,
          await acme.crypto.createPrivateEcdsaKey(),
        );
        await store.putChallenge({
          kind: 'tls-alpn-01',
          name,
          host: name,
          value: c.toString(),
          key: k.toString(),
          expires,
        });
      }
    },
    async cleanup(authz, challenge) {
      if (challenge.type === 'http-01') await store.deleteChallenge('http-01', challenge.token!);
      else await store.deleteChallenge('tls-alpn-01', authz.identifier.value);
    },
  };
}

/** The name of a DNS-01 TXT record: `_acme-challenge.` and the identifier (a wildcard's without `*.`). */
export function dnsRecordName(authz: acme.Authorization): string {
  return `_acme-challenge.${authz.identifier.value.replace(/^\*\./, '')}.`;
}

/**
 * DNS-01: the record put by the provider, then (`waitMs` > 0) waited for on the zone's
 * authoritative servers before the CA is asked.
 */
export function dnsSolver(provider: DnsProvider, waitMs: number, log: Logger): ChallengeSolver {
  return {
    async present(authz, _challenge, keyAuthorization) {
      const fqdn = dnsRecordName(authz);
      await provider.present(fqdn, keyAuthorization);
      if (waitMs > 0) {
        await waitForTxt(fqdn, keyAuthorization, provider.resolvers, { timeoutMs: waitMs });
        log.info(`acme: ${fqdn} TXT is served by every authoritative server of its zone`);
      }
    },
    async cleanup(authz, _challenge, keyAuthorization) {
      await provider.cleanup(dnsRecordName(authz), keyAuthorization);
    },
  };
}
