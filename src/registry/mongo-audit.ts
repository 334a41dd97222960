import { createHash } from 'node:crypto';
import { Binary, BSON, type Collection, type Db, type Document, type FindCursor } from 'mongodb';
import { idOfKey, keyOf, type SlotDoc } from './mongo-copy.js';
import type { ChangeJournal } from './mongo-journal.js';
import type { AuditReport } from './registry.js';

/** The farm's own records beside the registry: the chores' lease and the audit's digest. */
export const FARM_COLLECTION = 'farm';
const DIGEST_ID = 'digest';
/** `{_id, writes}`: the server's write count (see `writeCommands`) the last audit covered. */
const AUDITED_ID = 'audited';

interface DigestDoc {
  _id: string;
  at: Date;
  /** What each app document (less its `machines`) and slot document held at the last audit, as `encode` packs it. */
  apps: Binary;
  instances: Binary;
}

/**
 * Finds the edits made to the registry outside arr (mongoimport, a script, a shell): reads every
 * app document (less `machines`, arr's mirror of the slots) and every slot document, compares a
 * hash of each with the digest the previous audit left in the `farm` collection, appends the
 * documents that differ to the change journal (so that every node reads them again) and leaves
 * the new digest. Whichever node audits, and however many do at once, an edit is named in the
 * journal before a digest records it, so no edit is missed; a race only names one twice.
 * Then it records `through` (the write count read before it began) as audited: a node that saw
 * the count reach it knows that the journal names what those writes changed.
 */
export async function auditRegistry(
  apps: Collection,
  slots: Collection<SlotDoc>,
  farm: Collection,
  journal: ChangeJournal,
  through?: number,
): Promise<AuditReport> {
  const digest = (await farm.findOne({ _id: DIGEST_ID } as Document)) as DigestDoc | null;
  const [appHashes, slotHashes] = await Promise.all([
    hashes(apps.find({}, { projection: { machines: 0 }, raw: true })),
    hashes(slots.find({}, { raw: true })),
  ]);
  const first = !digest;
  const changedApps = differing(decode(digest?.apps), appHashes);
  const changedSlots = differing(decode(digest?.instances), slotHashes);
  const changed = changedApps.length + changedSlots.length;
  if (first || changed > 0) {
    // Named in the journal before the digest records it: an audit that fails in between names it again.
    await journal.append(
      first
        ? { apps: 'all', instances: 'all' }
        : { apps: changedApps.map(idOfKey), instances: changedSlots.map((k) => String(idOfKey(k))) },
    );
    const next: DigestDoc = {
      _id: DIGEST_ID,
      at: new Date(),
      apps: encode(appHashes),
      instances: encode(slotHashes),
    };
    await farm.findOneAndReplace({ _id: DIGEST_ID } as Document, next, { upsert: true });
  }
  if (through !== undefined)
    // $max: an audit that ends after a later one (two holders for a moment) lowers nothing.
    await farm.findOneAndUpdate(
      { _id: AUDITED_ID } as Document,
      { $max: { writes: through }, $set: { at: new Date() } },
      { upsert: true },
    );
  await journal.trim();
  return { apps: appHashes.size, instances: slotHashes.size, changed, first };
}

/** The write count the audits covered so far (see `auditRegistry`); 0 before the first. */
export async function auditedThrough(farm: Collection): Promise<number> {
  const doc = await farm.findOne({ _id: AUDITED_ID } as Document, { projection: { writes: 1 } });
  return Number(doc?.writes ?? 0);
}

/** Each document's hash (8 bytes of SHA-1 of its BSON), by key of its `_id`. */
async function hashes(cursor: FindCursor<Document>): Promise<Map<string, string>> {
  const out = new Map<string, string>();
  for await (const raw of cursor as unknown as AsyncIterable<Uint8Array>) {
    const hash = createHash('sha1').update(raw).digest('hex').slice(0, 16);
    out.set(keyOf(BSON.deserialize(raw)._id), hash);
  }
  return out;
}

/** Keys whose hash differs, or that are in one map only. */
function differing(before: Map<string, string>, now: Map<string, string>): string[] {
  const out: string[] = [];
  for (const [key, hash] of now) if (before.get(key) !== hash) out.push(key);
  for (const key of before.keys()) if (!now.has(key)) out.push(key);
  return out;
}

/** Packs key → hash as records of [key length: 4 bytes][key: UTF-8][hash: 8 bytes]. */
function encode(map: Map<string, string>): Binary {
  const parts: Buffer[] = [];
  for (const [key, hash] of map) {
    const k = Buffer.from(key, 'utf8');
    const len = Buffer.alloc(4);
    len.writeUInt32BE(k.length);
    parts.push(len, k, Buffer.from(hash, 'hex'));
  }
  return new Binary(Buffer.concat(parts));
}

function decode(bin: Binary | undefined): Map<string, string> {
  const out = new Map<string, string>();
  if (!bin) return out;
  const buf = Buffer.from(bin.buffer);
  for (let at = 0; at + 4 <= buf.length; ) {
    const len = buf.readUInt32BE(at);
    const key = buf.toString('utf8', at + 4, at + 4 + len);
    out.set(key, buf.toString('hex', at + 4 + len, at + 12 + len));
    at += 12 + len;
  }
  return out;
}

/**
 * The insert, update and delete commands the server answered so far (its serverStatus counters,
 * FerretDB's and MongoDB's alike: cheap), which arr never sends (see `takeOnce`): what moves it
 * is a write made outside arr. Undefined when the server does not tell.
 */
export async function writeCommands(admin: Db): Promise<number | undefined> {
  let status: Document;
  try {
    status = await admin.command({ serverStatus: 1 });
  } catch (err) {
    const code = (err as { code?: number }).code ?? 0;
    if (code === 13 || code === 59) return undefined; // Unauthorized, CommandNotFound
    throw err;
  }
  const commands = status.metrics?.commands as Record<string, { total?: unknown }> | undefined;
  if (!commands) return undefined;
  return ['insert', 'update', 'delete'].reduce((n, c) => n + Number(commands[c]?.total ?? 0), 0);
}
