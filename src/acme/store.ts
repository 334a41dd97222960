/**
 * What the ACME manager keeps, and where: the account, each host's certificate (or the last
 * error of its orders), the answers to pending challenges, the leases that make one node the
 * only one ordering for a host, and the TLS session ticket keys. Two kinds: a directory (one
 * node) and MongoDB collections of arr's own (a farm).
 */

export interface AccountRecord {
  /** The account's private key, PEM (possibly sealed, see key-seal.ts). */
  key: string;
  /** The CA's directory the account belongs to. */
  directory: string;
}

export interface CertRecord {
  host: string;
  /** The chain, PEM (leaf first), and its private key (possibly sealed). */
  cert?: string;
  key?: string;
  notBefore?: number;
  notAfter?: number;
  issuer?: string;
  serial?: string;
  /** When it is to be renewed (ms since the epoch), chosen from the CA's ARI window or its lifetime. */
  renewAt?: number;
  renewalSource?: 'ari' | 'lifetime';
  /** ARI: when the CA is asked for the window again (its Retry-After). */
  ariCheckAt?: number;
  /** The last failed order's message (the CA's own words), and when the next one may go. */
  lastError?: string;
  failures?: number;
  retryAt?: number;
  updatedAt: number;
}

export type ChallengeKind = 'http-01' | 'tls-alpn-01';

export interface ChallengeRecord {
  kind: ChallengeKind;
  /** http-01: the token; tls-alpn-01: the host name. */
  name: string;
  /** The host whose order it belongs to: answered for that host only. */
  host: string;
  /** http-01: the key authorization; tls-alpn-01: the challenge certificate, PEM. */
  value: string;
  /** tls-alpn-01: the challenge certificate's key (a throwaway key, not sealed). */
  key?: string;
  expires: number;
}

export interface TicketKeyRecord {
  /** The 12-hour period the key belongs to (Date.now() / 12 h, rounded down). */
  period: number;
  /** 48 bytes, base64. */
  keys: string;
}

export interface AcmeStore {
  readonly kind: 'file' | 'mongo';
  /** The account at `directory` (one per CA). */
  account(directory: string): Promise<AccountRecord | undefined>;
  /** Stores the account unless one for its directory is there already; returns the one that is. */
  putAccountOnce(account: AccountRecord): Promise<AccountRecord>;
  cert(host: string): Promise<CertRecord | undefined>;
  /** Every host's record, for the poll that picks up certificates others obtained. */
  certs(): Promise<CertRecord[]>;
  putCert(record: CertRecord): Promise<void>;
  challenge(kind: ChallengeKind, name: string): Promise<ChallengeRecord | undefined>;
  putChallenge(record: ChallengeRecord): Promise<void>;
  deleteChallenge(kind: ChallengeKind, name: string): Promise<void>;
  /**
   * Takes the lease for `host` for `owner` until `ttlMs` from now: true when taken (no lease,
   * or only an expired one, was there). Exclusive across every node sharing the store.
   */
  takeLease(host: string, owner: string, ttlMs: number): Promise<boolean>;
  releaseLease(host: string, owner: string): Promise<void>;
  /** The ticket keys of `period`, made from `fresh` by whichever node asks first. */
  ticketKeys(period: number, fresh: Buffer): Promise<Buffer>;
  close(): Promise<void>;
}
