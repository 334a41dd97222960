import { readFile, stat } from 'node:fs/promises';
import { EJSON } from './bson.js';
import type { App, Problem } from './types.js';

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

/**
 * A warning when an apps file that other users can read holds `env` values (a tenant's database
 * password, API keys): at arr's start and in `arr validate`. Undefined when there is none.
 */
export async function envExposure(path: string, apps: Iterable<App>): Promise<string | undefined> {
  const names = [...apps].filter((a) => a.env && Object.keys(a.env).length > 0).map((a) => a.name);
  if (names.length === 0) return undefined;
  const mode = (await stat(path).catch(() => undefined))?.mode;
  if (mode === undefined || (mode & 0o044) === 0) return undefined;
  const who = (mode & 0o044) === 0o044 ? 'its group and others' : mode & 0o040 ? 'its group' : 'others';
  const listed = names.length > 5 ? `${names.slice(0, 5).join(', ')}, ...` : names.join(', ');
  return `${path} is readable by ${who} (mode ${(mode & 0o7777).toString(8).padStart(4, '0')}) and holds the env of ${names.length} app${names.length === 1 ? '' : 's'} (${listed}): they can read those values; make it readable by arr's user alone (chmod 600 ${path})`;
}

function parseOne(text: string, line: number, out: ParsedAppsFile): void {
  try {
    out.docs.push({ line, doc: EJSON.parse(text, { relaxed: true }) });
  } catch (err) {
    out.problems.push({ line, message: `not valid extended JSON (${(err as Error).message})` });
  }
}

function parseArray(body: string): ParsedAppsFile {
  const out: ParsedAppsFile = { docs: [], problems: [] };
  // Lines of the array's elements are kept so that a bad element can be reported by line.
  parseValues(body, 1, out);
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
  parseValues(body, 0, out);
  return out;
}

/**
 * Parses the values found at nesting depth `depth`. A value that does not parse is reported by
 * the line it starts on; when it swallowed later lines (an unbalanced brace or quote), scanning
 * starts again at the first of those lines that opens a document at the broken value's
 * indentation or less, so that one broken document does not hide the ones after it.
 */
function parseValues(body: string, depth: number, out: ParsedAppsFile): void {
  let from: Resume = { offset: 0, line: 1, level: 0 };
  for (;;) {
    let resume: Resume | undefined;
    for (const chunk of splitValues(body, depth, from)) {
      const before = out.problems.length;
      parseOne(chunk.text, chunk.line, out);
      if (out.problems.length === before) continue;
      const last = out.problems[before - 1];
      // Several bare words on one broken line: one report for the line is enough.
      if (last?.line === chunk.line && last.id === undefined) out.problems.pop();
      resume = resumePoint(body, chunk, depth);
      if (resume) break;
    }
    if (!resume) return;
    from = resume;
  }
}

interface Resume {
  offset: number;
  line: number;
  level: number;
}

interface Chunk {
  text: string;
  line: number;
  start: number;
  end: number;
}

function resumePoint(body: string, chunk: Chunk, depth: number): Resume | undefined {
  const column = chunk.start - (body.lastIndexOf('\n', chunk.start - 1) + 1);
  let line = chunk.line;
  for (let nl = body.indexOf('\n', chunk.start); nl >= 0 && nl < chunk.end; nl = body.indexOf('\n', nl + 1)) {
    line++;
    const lineStart = nl + 1;
    const indent = /^[ \t]*/.exec(body.slice(lineStart, lineStart + column + 1))?.[0].length ?? 0;
    if (indent <= column && body[lineStart + indent] === '{' && lineStart + indent < chunk.end) {
      return { offset: lineStart + indent, line, level: depth };
    }
  }
  return undefined;
}

/**
 * Splits text into the JSON values found at nesting depth `depth` (0: top-level values one
 * after another; 1: the elements of a top-level array), tracking strings so that braces inside
 * them do not count. Text between values (commas, brackets, white space) is skipped. Scanning
 * starts at `from` (offset, its line number, and the nesting level there).
 */
function* splitValues(text: string, depth: number, from: Resume): Generator<Chunk> {
  let level = from.level;
  let inString = false;
  let escaped = false;
  let start = -1;
  let startLine = from.line;
  let line = from.line;
  for (let i = from.offset; i < text.length; i++) {
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
        yield { text: text.slice(start, i + 1), line: startLine, start, end: i + 1 };
        start = -1;
      }
    } else if (level === depth && start < 0 && c !== undefined && !/[\s,]/.test(c)) {
      // A bare scalar where a document should be: hand it to the parser to report.
      start = i;
      startLine = line;
    } else if (level === depth && start >= 0 && c !== undefined && /[\s,]/.test(c) && text[start] !== '{') {
      yield { text: text.slice(start, i), line: startLine, start, end: i };
      start = -1;
    }
  }
  if (start >= 0) yield { text: text.slice(start), line: startLine, start, end: text.length };
}
