/**
 * Edits of an apps file that keep every other byte of it: the `revision` of one document is set
 * (`arr restart`), in place when the document has one, else added before its closing brace.
 */

/** Where the object that starts at or after `from` ends (the index of its `}`), or -1. */
function objectEnd(text: string, start: number): number {
  let depth = 0;
  for (let i = start; i < text.length; i++) {
    const c = text[i];
    if (c === '"') i = stringEnd(text, i);
    else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') {
      depth--;
      if (depth === 0) return i;
    }
  }
  return -1;
}

/** The index of the closing quote of the string that opens at `i`. */
function stringEnd(text: string, i: number): number {
  for (let j = i + 1; j < text.length; j++) {
    if (text[j] === '\\') j++;
    else if (text[j] === '"') return j;
  }
  return text.length;
}

/** The top-level `"revision": N` of the object [open, close]: the span of N, or undefined. */
function revisionValue(text: string, open: number, close: number): { from: number; to: number } | undefined {
  let depth = 0;
  for (let i = open; i < close; i++) {
    const c = text[i];
    if (c === '"') {
      const end = stringEnd(text, i);
      if (depth === 1 && text.slice(i, end + 1) === '"revision"') {
        let j = end + 1;
        while (/\s/.test(text[j] ?? '')) j++;
        if (text[j] === ':') {
          j++;
          while (/\s/.test(text[j] ?? '')) j++;
          const m = /^-?\d+(?:\.\d+)?(?:[eE][-+]?\d+)?/.exec(text.slice(j, close));
          if (m) return { from: j, to: j + m[0].length };
        }
      }
      i = end;
    } else if (c === '{' || c === '[') depth++;
    else if (c === '}' || c === ']') depth--;
  }
  return undefined;
}

/**
 * The text with the document that starts on `line` (1-based, as the parser reports it) given
 * `"revision": revision`; undefined when no object starts there.
 */
export function setRevision(text: string, line: number, revision: number): string | undefined {
  let offset = 0;
  for (let l = 1; l < line; l++) {
    const nl = text.indexOf('\n', offset);
    if (nl < 0) return undefined;
    offset = nl + 1;
  }
  const open = text.indexOf('{', offset);
  if (open < 0) return undefined;
  const close = objectEnd(text, open);
  if (close < 0) return undefined;
  const existing = revisionValue(text, open, close);
  if (existing) return text.slice(0, existing.from) + String(revision) + text.slice(existing.to);
  let last = close - 1;
  while (last > open && /\s/.test(text[last]!)) last--;
  const insert = last === open ? `"revision": ${revision}` : `, "revision": ${revision}`;
  return text.slice(0, last + 1) + insert + text.slice(last + 1);
}
