// OutputLines (src/activation/output-lines.ts), in process: lines as readline splits them, and
// no piece longer than MAX_PIECE bytes, cut between UTF-8 characters.
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { MAX_PIECE, OutputLines } from '../../src/activation/output-lines.js';

/** The pieces of `chunks`, as [text, continued]. */
function split(chunks: (string | Buffer)[]): [string, boolean][] {
  const pieces: [string, boolean][] = [];
  const lines = new OutputLines((bytes, continued) => pieces.push([bytes.toString('utf8'), continued]));
  for (const c of chunks) lines.push(typeof c === 'string' ? Buffer.from(c) : c);
  lines.end();
  return pieces;
}

describe('OutputLines', () => {
  it('splits at LF, CR and CRLF, also across chunks; a last line without an end comes at the end', () => {
    assert.deepEqual(split(['a\nb\r\nc\rd', '\n', 'e\r', '\nf\r', 'g']), [
      ['a', false],
      ['b', false],
      ['c', false],
      ['d', false],
      ['e', false],
      ['f', false],
      ['g', false],
    ]);
    assert.deepEqual(split(['\n\n']), [
      ['', false],
      ['', false],
    ]);
    assert.deepEqual(split([]), []);
  });

  it('gives a long line in pieces of MAX_PIECE bytes, all but the last continued', () => {
    const line = 'x'.repeat(2 * MAX_PIECE + 10);
    const pieces = split([line.slice(0, 1000), line.slice(1000), '\nnext\n']);
    assert.deepEqual(
      pieces.map(([t, c]) => [t.length, c]),
      [
        [MAX_PIECE, true],
        [MAX_PIECE, true],
        [10, false],
        [4, false],
      ],
    );
    // A line of exactly MAX_PIECE bytes is one piece, not continued.
    assert.deepEqual(
      split([`${'z'.repeat(MAX_PIECE)}\n`]).map(([t, c]) => [t.length, c]),
      [[MAX_PIECE, false]],
    );
  });

  it('never cuts a UTF-8 character in two', () => {
    // 'é' is 2 bytes, '€' 3, '😀' 4: after MAX_PIECE - 1 bytes of 'a', each straddles the cut.
    for (const ch of ['é', '€', '😀']) {
      const line = `${'a'.repeat(MAX_PIECE - 1)}${ch}${'b'.repeat(5)}`;
      const pieces = split([line]);
      assert.deepEqual(
        pieces.map(([t, c]) => [t, c]),
        [
          ['a'.repeat(MAX_PIECE - 1), true],
          [`${ch}bbbbb`, false],
        ],
      );
    }
  });
});
