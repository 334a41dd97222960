import { type Collection, MongoClient, MongoServerError } from 'mongodb';
import type { AccountRecord, AcmeStore, CertRecord, ChallengeKind, ChallengeRecord } from './store.js';

/** arr's own collections next to `apps`. */
export const ACME_COLLECTIONS = {
  account: 'acme_account',
  certs: 'acme_certs',
  challenges: 'acme_challenges',
  leases: 'acme_leases',
  tickets: 'tls_ticket_keys',
} as const;

type WithId<T> = T & { _id: string };

const DUPLICATE_KEY = 11000;

function isDuplicate(err: unknown): boolean {
  return err instanceof MongoServerError && err.code === DUPLICATE_KEY;
}

/**
 * The farm's ACME store. Exclusive things (the account, a host's lease, a period's ticket keys)
 * are inserts whose `_id` names them: a unique `_id` is enforced by every MongoDB-wire server,
 * whereas a conditional update is not atomic on FerretDB (see docs/farm.md, "How the
 * farm keeps its promises").
 */
export class MongoAcmeStore implements AcmeStore {
  readonly kind = 'mongo' as const;
  private readonly client: MongoClient;
  private readonly accountC: Collection<WithId<AccountRecord>>;
  private readonly certsC: Collection<WithId<CertRecord>>;
  private readonly challengesC: Collection<WithId<ChallengeRecord>>;
  private readonly leasesC: Collection<{ _id: string; owner: string; expires: number }>;
  private readonly ticketsC: Collection<{ _id: string; period: number; keys: string }>;

  constructor(url: string, database: string) {
    this.client = new MongoClient(url, { serverSelectionTimeoutMS: 2000, appName: 'arr-acme' });
    const db = this.client.db(database);
    this.accountC = db.collection(ACME_COLLECTIONS.account);
    this.certsC = db.collection(ACME_COLLECTIONS.certs);
    this.challengesC = db.collection(ACME_COLLECTIONS.challenges);
    this.leasesC = db.collection(ACME_COLLECTIONS.leases);
    this.ticketsC = db.collection(ACME_COLLECTIONS.tickets);
  }

  async account(directory: string): Promise<AccountRecord | undefined> {
    const d = await this.accountC.findOne({ _id: directory });
    return d ? { key: d.key, directory: d.directory } : undefined;
  }

  async putAccountOnce(account: AccountRecord): Promise<AccountRecord> {
    try {
      await this.accountC.insertOne({ _id: account.directory, ...account });
      return account;
    } catch (err) {
      if (!isDuplicate(err)) throw err;
      return (await this.account(account.directory)) ?? account;
    }
  }

  async cert(host: string): Promise<CertRecord | undefined> {
    const d = await this.certsC.findOne({ _id: host });
    return d ? strip(d) : undefined;
  }

  async certs(): Promise<CertRecord[]> {
    return (await this.certsC.find({}).toArray()).map(strip);
  }

  async putCert(record: CertRecord): Promise<void> {
    await this.certsC.replaceOne({ _id: record.host }, record, { upsert: true });
  }

  async challenge(kind: ChallengeKind, name: string): Promise<ChallengeRecord | undefined> {
    const d = await this.challengesC.findOne({ _id: `${kind}:${name}` });
    return d && d.expires > Date.now() ? strip(d) : undefined;
  }

  async putChallenge(record: ChallengeRecord): Promise<void> {
    const _id = `${record.kind}:${record.name}`;
    await this.challengesC.replaceOne({ _id }, record, { upsert: true });
  }

  async deleteChallenge(kind: ChallengeKind, name: string): Promise<void> {
    await this.challengesC.deleteOne({ _id: `${kind}:${name}` });
    // Challenges of orders whose node died are dropped by whoever comes next.
    await this.challengesC.deleteMany({ expires: { $lt: Date.now() } });
  }

  async takeLease(host: string, owner: string, ttlMs: number): Promise<boolean> {
    const now = Date.now();
    // An expired lease (its node died) is removed first; then the insert decides.
    await this.leasesC.deleteOne({ _id: host, expires: { $lt: now } });
    try {
      await this.leasesC.insertOne({ _id: host, owner, expires: now + ttlMs });
      return true;
    } catch (err) {
      if (isDuplicate(err)) return false;
      throw err;
    }
  }

  async releaseLease(host: string, owner: string): Promise<void> {
    await this.leasesC.deleteOne({ _id: host, owner });
  }

  async ticketKeys(period: number, fresh: Buffer): Promise<Buffer> {
    const _id = String(period);
    try {
      await this.ticketsC.insertOne({ _id, period, keys: fresh.toString('base64') });
      await this.ticketsC.deleteMany({ period: { $lt: period - 1 } });
      return fresh;
    } catch (err) {
      if (!isDuplicate(err)) throw err;
      const d = await this.ticketsC.findOne({ _id });
      return d ? Buffer.from(d.keys, 'base64') : fresh;
    }
  }

  async close(): Promise<void> {
    await this.client.close();
  }
}

function strip<T extends { _id: string }>(d: T): Omit<T, '_id'> {
  const { _id, ...rest } = d;
  return rest;
}
