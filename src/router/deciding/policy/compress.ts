import * as zlib from 'node:zlib';

export type Encoding = 'br' | 'zstd' | 'gzip';

/** zlib's zstd functions (Node 22.15 and later; @types/node 20 does not know them). */
type ZstdZlib = typeof zlib & {
  createZstdCompress?: (options?: object) => zlib.Gzip;
  zstdCompressSync?: (buf: Buffer) => Buffer;
};
const withZstd = zlib as ZstdZlib;

const GZIP_OPTIONS = { level: 5 };
const BROTLI_OPTIONS = { params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 4 } };

/** What arr offers, best first when a client likes several as much: zstd only where Node has it. */
export const OFFERED: readonly Encoding[] =
  typeof withZstd.createZstdCompress === 'function' ? ['br', 'zstd', 'gzip'] : ['br', 'gzip'];

/** Answers smaller than this are sent as they are: compression would gain less than its headers. */
export const MIN_COMPRESS_BYTES = 1024;

/**
 * The encoding a client's Accept-Encoding prefers among `offered` (RFC 9110 §12.5.3): the
 * highest q-value wins, ties go to the order of `offered`; `*` stands for any not named;
 * q=0 refuses. Undefined when none is acceptable (or there is no header).
 */
export function chooseEncoding(
  accept: string | undefined,
  offered: readonly Encoding[] = OFFERED,
): Encoding | undefined {
  if (!accept) return undefined;
  let best: Encoding | undefined;
  let bestQ = 0;
  let bestRank = offered.length;
  let wildcard = -1;
  const named = new Set<string>();
  for (const part of accept.split(',')) {
    const semi = part.indexOf(';');
    const name = (semi === -1 ? part : part.slice(0, semi)).trim().toLowerCase();
    const q = semi === -1 ? 1 : qValue(part.slice(semi + 1));
    if (name === '*') {
      wildcard = q;
      continue;
    }
    named.add(name);
    const rank = offered.indexOf(name as Encoding);
    if (rank === -1 || q <= 0) continue;
    if (q > bestQ || (q === bestQ && rank < bestRank)) {
      best = name as Encoding;
      bestQ = q;
      bestRank = rank;
    }
  }
  if (wildcard > 0) {
    for (let rank = 0; rank < offered.length; rank++) {
      const e = offered[rank]!;
      if (named.has(e)) continue;
      if (wildcard > bestQ || (wildcard === bestQ && rank < bestRank)) {
        best = e;
        bestQ = wildcard;
        bestRank = rank;
      }
    }
  }
  return best;
}

/** The q of `q=0.5` among a coding's parameters (1 without one, 0 when malformed). */
function qValue(params: string): number {
  const m = /(?:^|;)\s*q\s*=\s*([01](?:\.\d{0,3})?)\s*(?:;|$)/i.exec(params);
  if (!m) return /\bq\s*=/i.test(params) ? 0 : 1;
  return Math.min(1, Number(m[1]));
}

const COMPRESSIBLE = new Set([
  'application/javascript',
  'application/x-javascript',
  'application/ecmascript',
  'application/json',
  'application/xml',
  'application/xhtml+xml',
  'application/rss+xml',
  'application/atom+xml',
  'application/wasm',
  'application/graphql-response+json',
  'application/x-ndjson',
  'application/vnd.ms-fontobject',
  'image/svg+xml',
  'image/x-icon',
  'image/vnd.microsoft.icon',
  'image/bmp',
  'font/ttf',
  'font/otf',
]);

/** Whether a Content-Type is worth compressing: text, JSON, JavaScript, XML, SVG, WASM and the like. */
export function compressibleType(contentType: string | undefined): boolean {
  if (!contentType) return false;
  const semi = contentType.indexOf(';');
  const type = (semi === -1 ? contentType : contentType.slice(0, semi)).trim().toLowerCase();
  return (
    type.startsWith('text/') || COMPRESSIBLE.has(type) || type.endsWith('+json') || type.endsWith('+xml')
  );
}

/** What decides whether an answer is compressed, from its status and head. */
export interface AnswerHead {
  status: number;
  contentType: string | undefined;
  contentEncoding: string | undefined;
  /** -1 when the answer has no Content-Length (streamed). */
  contentLength: number;
  cacheControl?: string | undefined;
}

/**
 * Whether an answer is compressed (the request side was decided before: a negotiated encoding,
 * not HEAD, no Range): not 204, 206 or 304, not compressed by the instance already, a
 * compressible type, at least MIN_COMPRESS_BYTES or of unknown length, and no
 * `Cache-Control: no-transform`.
 */
export function compressesAnswer(head: AnswerHead): boolean {
  const s = head.status;
  if (s < 200 || s === 204 || s === 206 || s === 304) return false;
  if (head.contentEncoding !== undefined && head.contentEncoding.toLowerCase() !== 'identity') return false;
  if (head.contentLength >= 0 && head.contentLength < MIN_COMPRESS_BYTES) return false;
  // RFC 9111 §5.2.2.6: an intermediary does not transform such content.
  if (head.cacheControl !== undefined && /no-transform/i.test(head.cacheControl)) return false;
  return compressibleType(head.contentType);
}

/** An ETag that still holds for the compressed bytes: a strong one is made weak (W/"..."). */
export function weakETag(etag: string): string {
  return etag.startsWith('W/') ? etag : `W/${etag}`;
}

/** Vary with Accept-Encoding added (once), to what the instance said. */
export function varyWithEncoding(vary: string | undefined): string {
  if (!vary) return 'Accept-Encoding';
  if (vary.trim() === '*' || /(^|,)\s*accept-encoding\s*(,|$)/i.test(vary)) return vary;
  return `${vary}, Accept-Encoding`;
}

/**
 * A compressor for `encoding`. Levels are those of the common proxies' defaults for on-the-fly
 * compression (nginx gzip_comp_level is 1 by default, Caddy's gzip 5, its brotli 4 region): gzip
 * 5, brotli 4 (11, brotli's default, costs ten times the CPU), zstd 3.
 */
export function compressor(encoding: Encoding): zlib.Gzip | zlib.BrotliCompress {
  if (encoding === 'gzip') return zlib.createGzip(GZIP_OPTIONS);
  if (encoding === 'br') return zlib.createBrotliCompress(BROTLI_OPTIONS);
  return withZstd.createZstdCompress!();
}

/** A whole body compressed at once (the same levels as `compressor`). */
export function compressWhole(encoding: Encoding, body: Buffer): Buffer {
  if (encoding === 'gzip') return zlib.gzipSync(body, GZIP_OPTIONS);
  if (encoding === 'br') return zlib.brotliCompressSync(body, BROTLI_OPTIONS);
  return withZstd.zstdCompressSync!(body);
}
