import type { IncomingHttpHeaders, OutgoingHttpHeaders } from 'node:http';
import type { HeaderEdits } from '../../../registry/types.js';

/**
 * An app's `headers.request` or `headers.response`, compiled once: the names it touches (lower
 * case) and the fields it sets. A flat list ([name, value, ...]) loses every field of a
 * touched name, then gets the set ones appended.
 */
export class HeaderEditor {
  private readonly touched: ReadonlySet<string>;
  /** The lengths of the touched names: a field of another length is not lower-cased to be looked up. */
  private readonly lengths: ReadonlySet<number>;
  private readonly set: readonly string[];

  constructor(edits: HeaderEdits, extraRemoved: readonly string[] = []) {
    this.touched = new Set([...Object.keys(edits), ...extraRemoved]);
    this.lengths = new Set([...this.touched].map((n) => n.length));
    const set: string[] = [];
    for (const name of Object.keys(edits)) {
      const v = edits[name];
      if (typeof v === 'string') set.push(name, v);
    }
    this.set = set;
  }

  /** The flat list edited, plus `extra` fields ([name, value, ...]) set by other policies. */
  flat(headers: string[], extra?: readonly string[]): string[] {
    const out: string[] = [];
    for (let i = 0; i + 1 < headers.length; i += 2) {
      const name = headers[i]!;
      const touched = this.lengths.has(name.length) && this.touched.has(name.toLowerCase());
      if (!touched && !namedIn(extra, name)) out.push(name, headers[i + 1]!);
    }
    for (const v of this.set) out.push(v);
    if (extra) for (const v of extra) out.push(v);
    return out;
  }

  /** The same on an object of lower-case names (an HTTP/2 head, a WebSocket upgrade's req.headers). */
  object(headers: OutgoingHttpHeaders | IncomingHttpHeaders): void {
    for (const name of this.touched) delete headers[name];
    for (let i = 0; i < this.set.length; i += 2) headers[this.set[i]!] = this.set[i + 1]!;
  }
}

function namedIn(extra: readonly string[] | undefined, name: string): boolean {
  if (extra === undefined) return false;
  for (let i = 0; i < extra.length; i += 2)
    if (extra[i]!.length === name.length && extra[i] === name.toLowerCase()) return true;
  return false;
}

/** Sets `extra` ([name, value, ...], lower-case names) on a header object, replacing what was there. */
export function setOn(headers: IncomingHttpHeaders, extra: readonly string[]): void {
  for (let i = 0; i + 1 < extra.length; i += 2) headers[extra[i]!] = extra[i + 1]!;
}

/** An editor that changes nothing, for a request that only has fields of other policies to add. */
export const NO_EDITS = new HeaderEditor({});
