import { readFile } from 'node:fs/promises';
import { BSON } from 'mongodb';
import type { Problem } from './types.js';

/** One document read from an apps file, with the line it starts on. */
export interface SourceDocument {
  line: number;
  doc: unknown;
}

export interface ParsedAppsFile {
  docs: SourceDocument[];
  problems: Problem[];
}

/**
 * Parses an apps file: MongoDB extended JSON, either one document per line (what
 * `mongoimport` reads), documents spread over several lines one after another, or a JSON array.
 * A document that does not parse is reported by line and the others are kept.
 */
export function parseAppsText(text: string): ParsedAppsFile {
  const body = text.replace(/^\uFEFF/, '');
  const first = body.trimStart()[0];
  if (first === undefined) return { docs: [], problems: [] };
  if (first === '[') return parseArray(body);
  return parseConcatenated(body);
}

export async function readAppsFile(path: string): Promise<ParsedAppsFile> {
  return parseAppsText(await readFile(path, 'utf8'));
}

function parseOne(text: string, line: number, out: ParsedAppsFile): void {
  try {
    out.docs.push({ line, doc: BSON.EJSON.parse(text, { relaxed: true }) });
  } catch (err) {
    out.problems.push({ line, message: `not valid extended JSON (${(err as Error).message})` });
  }
}

function parseArray(body: string): ParsedAppsFile {
  const out: ParsedAppsFile = { docs: [], problems: [] };
  // Lines of the array's elements are kept so that a bad element can be reported by line.
  for (const chunk of splitValues(body, 1)) parseOne(chunk.text, chunk.line, out);
  return out;
}

function parseConcatenated(body: string): ParsedAppsFile {
  const out: ParsedAppsFile = { docs: [], problems: [] };
  const lines = body.split('\n');
  const oneDocPerLine = lines.every((l) => {
    const t = l.trim();
    return t === '' || (t.startsWith('{') && t.endsWith('}'));
  });
  if (oneDocPerLine) {
    // Each line on its own, so that a broken line costs only itself.
    lines.forEach((l, i) => {
      if (l.trim() !== '') parseOne(l, i + 1, out);
    });
    return out;
  }
  for (const chunk of splitValues(body, 0)) parseOne(chunk.text, chunk.line, out);
  return out;
}

/**
 * Splits text into the JSON values found at nesting depth `depth` (0: top-level values one
 * after another; 1: the elements of a top-level array), tracking strings so that braces inside
 * them do not count. Text between values (commas, brackets, white space) is skipped.
 */
function* splitValues(text: string, depth: number): Generator<{ text: string; line: number }> {
  let level = 0;
  let inString = false;
  let escaped = false;
  let start = -1;
  let startLine = 1;
  let line = 1;
  for (let i = 0; i < text.length; i++) {
    const c = text[i];
    if (c === '\n') line++;
    if (inString) {
      if (escaped) escaped = false;
      else if (c === '\\') escaped = true;
      else if (c === '"') inString = false;
      continue;
    }
    if (c === '"') {
      inString = true;
      if (level === depth && start < 0) {
        start = i;
        startLine = line;
      }
    } else if (c === '{' || c === '[') {
      if (level === depth && start < 0) {
        start = i;
        startLine = line;
      }
      level++;
    } else if (c === '}' || c === ']') {
      level--;
      if (level === depth && start >= 0) {
        yield { text: text.slice(start, i + 1), line: startLine };
        start = -1;
      }
    } else if (level === depth && start < 0 && c !== undefined && !/[\s,]/.test(c)) {
      // A bare scalar where a document should be: hand it to the parser to report.
      start = i;
      startLine = line;
    } else if (level === depth && start >= 0 && c !== undefined && /[\s,]/.test(c) && text[start] !== '{') {
      yield { text: text.slice(start, i), line: startLine };
      start = -1;
    }
  }
  if (start >= 0) yield { text: text.slice(start), line: startLine };
}
