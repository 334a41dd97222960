/**
 * The longest piece of an instance's output line arr handles at once, in bytes (as Docker's
 * and journald's line limits): a longer line is handed on in pieces of at most this size, each
 * but the last marked as continued. What arr holds of an instance's output is bounded by it,
 * whatever the instance writes.
 */
export const MAX_PIECE = 16 * 1024;

const LF = 0x0a;
const CR = 0x0d;

/**
 * Told of each piece of output: `bytes` is valid only during the call (its memory is reused);
 * `continued` when the line goes on in the next piece.
 */
export type PieceListener = (bytes: Buffer, continued: boolean) => void;

/**
 * Splits a stream of bytes into lines as readline does (at LF, CR or CRLF; a last line without
 * an end is given at the end of the stream), but never holds more than MAX_PIECE bytes of a
 * line: the rest comes in further pieces. Pieces are cut between UTF-8 characters.
 */
export class OutputLines {
  private readonly line = Buffer.allocUnsafe(MAX_PIECE);
  private length = 0;
  /** The last chunk ended with CR: an LF that begins the next one is part of that line end. */
  private afterCr = false;

  constructor(private readonly onPiece: PieceListener) {}

  push(chunk: Buffer): void {
    let at = 0;
    if (this.afterCr && chunk.length > 0) {
      this.afterCr = false;
      if (chunk[0] === LF) at = 1;
    }
    // Where the next LF and CR are, looked for once each (so that a chunk is scanned in linear time).
    let lf = chunk.indexOf(LF, at);
    let cr = chunk.indexOf(CR, at);
    while (at < chunk.length) {
      if (lf !== -1 && lf < at) lf = chunk.indexOf(LF, at);
      if (cr !== -1 && cr < at) cr = chunk.indexOf(CR, at);
      const end = lf === -1 ? cr : cr === -1 ? lf : Math.min(lf, cr);
      this.append(chunk, at, end === -1 ? chunk.length : end);
      if (end === -1) return;
      this.flush(this.length, false);
      at = end + 1;
      if (chunk[end] === CR) {
        if (at === chunk.length) this.afterCr = true;
        else if (chunk[at] === LF) at++;
      }
    }
  }

  /** The stream ended: its last line, if it had no line end. */
  end(): void {
    if (this.length > 0) this.flush(this.length, false);
  }

  private append(chunk: Buffer, from: number, to: number): void {
    while (from < to) {
      // A full piece goes only once more of its line comes: one that ends right here is not continued.
      if (this.length === MAX_PIECE) this.flush(utf8Boundary(this.line, MAX_PIECE), true);
      const n = Math.min(MAX_PIECE - this.length, to - from);
      chunk.copy(this.line, this.length, from, from + n);
      this.length += n;
      from += n;
    }
  }

  /** Hands on the first `cut` bytes held; what follows them stays for the next piece. */
  private flush(cut: number, continued: boolean): void {
    this.onPiece(this.line.subarray(0, cut), continued);
    this.line.copyWithin(0, cut, this.length);
    this.length -= cut;
  }
}

/**
 * The largest length up to `length` that does not cut a UTF-8 sequence of `bytes` in two
 * (`length` itself for bytes that are not UTF-8: they are never held back for long).
 */
export function utf8Boundary(bytes: Buffer, length: number): number {
  let lead = length - 1;
  // Continuation bytes (10xxxxxx) back to the byte that leads them: at most 3.
  while (lead >= 0 && length - lead <= 3 && (bytes[lead]! & 0xc0) === 0x80) lead--;
  if (lead <= 0) return length;
  const b = bytes[lead]!;
  const size = b >= 0xf0 ? 4 : b >= 0xe0 ? 3 : b >= 0xc0 ? 2 : 1;
  return length - lead >= size ? length : lead;
}
