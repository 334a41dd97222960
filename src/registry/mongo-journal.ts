import { randomBytes } from 'node:crypto';
import type { Collection, Document, Filter, UpdateFilter } from 'mongodb';

/** One entry of the `changes` collection: which documents a writer changed. */
export const CHANGES_COLLECTION = 'changes';

/** What changed: the `_id`s of app documents and of slot documents, or all of them. */
export interface Change {
  apps?: unknown[] | 'all';
  instances?: string[] | 'all';
}

interface Entry extends Change {
  /** The sequence number, zero-padded: `_id` order is sequence order, and a lookup by a string `_id` is cheap everywhere. */
  _id: string;
  seq: number;
  at: Date;
  /** Random: tells this entry from another with the same number in a journal that was replaced. */
  stamp: string;
  by: string;
}

/** Entries older than this (by the writer's clock) are removed, the newest one excepted. */
export const KEEP_MS = 10 * 60_000;
/** An entry naming more documents than this names all of them: readers read everything again. */
const MAX_KEYS = 200;
/**
 * A reader this many entries behind reads everything again instead: one lookup per entry costs
 * about what a full read of a few thousand apps does.
 */
const MAX_BEHIND = 1000;

const entryId = (seq: number) => String(seq).padStart(15, '0');

/**
 * The farm's change journal: every arr that writes the registry appends an entry naming the
 * documents it changed, and every node reads the entries it has not seen, one lookup by `_id`
 * each, so that an idle farm costs two lookups per node per poll and a change costs the
 * documents it names. Entries are numbered without gaps: a writer takes number n+1 by
 * creating it (`takeOnce`: a unique `_id`, atomic on every MongoDB-wire server, where FerretDB
 * v1 loses concurrent updates of one document), only once it has seen number n.
 */
export class ChangeJournal {
  /** The highest number known to be taken. */
  private head = 0;
  /** The number the reader reads next; 0 while it has no position. */
  private next = 0;
  /** The stamp of entry `next - 1`, as read. */
  private lastStamp: string | undefined;

  constructor(
    private readonly entries: Collection<Entry>,
    private readonly writer: string,
  ) {}

  /** Puts the reader at the end of the journal: to be called before a full read of the registry. */
  async start(): Promise<void> {
    const last = await this.newest();
    this.head = last?.seq ?? 0;
    this.next = this.head + 1;
    this.lastStamp = last?.stamp;
  }

  /**
   * Hands every entry the reader has not seen to `take`, in order; false when the reader cannot
   * know what changed (never started, or the journal was trimmed past it or replaced): then the
   * caller must read everything and `start` again.
   */
  async read(take: (change: Change) => void): Promise<boolean> {
    if (this.next === 0) return false;
    let seen = 0;
    for (;;) {
      if (seen === MAX_BEHIND) {
        this.next = 0;
        return false;
      }
      const entry = await this.entries.findOne({ _id: entryId(this.next) });
      if (!entry) break;
      take(entry);
      this.lastStamp = entry.stamp;
      this.head = Math.max(this.head, this.next);
      this.next++;
      seen++;
    }
    if (seen > 0 || this.next === 1) return true;
    // Nothing new: the last entry read is still there (the newest is never trimmed) unless this
    // reader fell behind the trimming or the journal was replaced.
    const last = await this.entries.findOne({ _id: entryId(this.next - 1) }, { projection: { stamp: 1 } });
    if (last?.stamp === this.lastStamp) return true;
    this.next = 0;
    return false;
  }

  /** Records a change; resolves once it is in the journal. */
  async append(change: Change): Promise<void> {
    const entry = compact(change);
    if (entry.apps === undefined && entry.instances === undefined) return;
    let seq = this.head + 1;
    // Number n+1 only after n: a writer whose knowledge is stale finds the end first.
    if (seq === 1 || !(await this.entries.findOne({ _id: entryId(seq - 1) }))) {
      seq = ((await this.newest())?.seq ?? 0) + 1;
    }
    const fields = { at: new Date(), stamp: randomBytes(6).toString('hex'), by: this.writer, ...entry };
    while (!(await takeOnce(this.entries, entryId(seq), { seq, ...fields }))) seq++; // taken: the next one
    this.head = Math.max(this.head, seq);
  }

  /** Removes the entries older than KEEP_MS but the newest; returns how many. */
  async trim(now = Date.now()): Promise<number> {
    const old = await this.entries
      .find({ at: { $lt: new Date(now - KEEP_MS) }, _id: { $lt: entryId(this.head) } })
      .toArray();
    for (const { _id } of old) await this.entries.findOneAndDelete({ _id });
    return old.length;
  }

  private newest(): Promise<Entry | null> {
    return this.entries.find({}).sort({ _id: -1 }).limit(1).next();
  }
}

/** The change as an entry holds it: no empty lists, long ones as 'all'. */
function compact(change: Change): Change {
  const out: Change = {};
  const apps = change.apps;
  if (apps === 'all' || (apps && apps.length > MAX_KEYS)) out.apps = 'all';
  else if (apps && apps.length > 0) out.apps = apps;
  const slots = change.instances;
  if (slots === 'all' || (slots && slots.length > MAX_KEYS)) out.instances = 'all';
  else if (slots && slots.length > 0) out.instances = [...new Set(slots)];
  return out;
}

/**
 * Creates the document `_id` with `fields` unless it exists; whether this call created it. A
 * unique `_id` decides between racing callers on every MongoDB-wire server. It is a
 * findAndModify, as every write of arr is: the server's insert, update and delete counters then
 * move only for writes made outside arr, which the audit of the registry watches for.
 */
export async function takeOnce<T extends Document>(
  collection: Collection<T>,
  _id: unknown,
  fields: Document,
): Promise<boolean> {
  try {
    const before = await collection.findOneAndUpdate(
      { _id } as Filter<T>,
      { $setOnInsert: fields } as UpdateFilter<T>,
      { upsert: true, returnDocument: 'before' },
    );
    return before === null;
  } catch (err) {
    if ((err as { code?: number }).code === 11000) return false; // another caller's upsert won
    throw err;
  }
}
