import type { OutgoingHttpHeaders } from 'node:http';
import * as zlib from 'node:zlib';
import {
  compressesAnswer,
  compressor,
  compressWhole,
  type Encoding,
  varyWithEncoding,
  weakETag,
} from './compress.js';
import type { EdgeRequest } from './gate.js';
import { NO_EDITS } from './header-edits.js';

/** What the compressed body is written to: a ServerResponse or an H2Response. */
interface Sink {
  readonly destroyed: boolean;
  write(chunk: Buffer): boolean;
  end(): unknown;
  destroy(): void;
  once(event: 'drain', listener: () => void): unknown;
}

/** An answer's body on its way to the client, compressed. */
export interface Encoder {
  /** Writes a chunk of the instance's body; false (and `resume` later) when the compressor is full. */
  write(chunk: Buffer, resume: (() => void) | undefined): boolean;
  end(): void;
  destroy(): void;
}

/**
 * Answers of a known length up to this are compressed whole, in one call on the event loop, as
 * nginx does in its worker: a zlib stream's round trips to the thread pool per chunk cost more
 * than compressing 64 KB (bench/decisions.md).
 */
const WHOLE_MAX_BYTES = 64 * 1024;

/** The encoder for an answer of `length` bytes (-1: unknown, a stream). */
export function encoderFor(encoding: Encoding, sink: Sink, length: number): Encoder {
  if (length >= 0 && length <= WHOLE_MAX_BYTES) return new WholeEncoder(encoding, sink);
  return new StreamEncoder(encoding, sink, length < 0);
}

/** A small answer: its chunks kept, compressed at its end and sent with it. */
class WholeEncoder implements Encoder {
  private chunks: Buffer[] = [];

  constructor(
    private readonly encoding: Encoding,
    private readonly sink: Sink,
  ) {}

  write(chunk: Buffer): boolean {
    this.chunks.push(chunk);
    return true;
  }

  end(): void {
    if (this.sink.destroyed) return; // the client left
    const body = this.chunks.length === 1 ? this.chunks[0]! : Buffer.concat(this.chunks);
    this.chunks = [];
    let out: Buffer;
    try {
      out = compressWhole(this.encoding, body);
    } catch {
      this.sink.destroy();
      return;
    }
    this.sink.write(out);
    this.sink.end();
  }

  destroy(): void {
    this.chunks = [];
  }
}

/**
 * A body on its way through a zlib stream. `flushEach` (an answer of unknown length: a stream,
 * Server-Sent Events) flushes after every write, so that what the instance sent reaches the
 * client now, not when the compressor's window fills.
 */
class StreamEncoder implements Encoder {
  private readonly z: zlib.Gzip | zlib.BrotliCompress;
  private readonly flushKind: number | undefined;

  constructor(
    encoding: Encoding,
    sink: Sink,
    private readonly flushEach: boolean,
  ) {
    const z = compressor(encoding);
    this.z = z;
    this.flushKind = encoding === 'gzip' ? zlib.constants.Z_SYNC_FLUSH : undefined;
    z.on('data', (chunk: Buffer) => {
      if (!sink.write(chunk)) {
        z.pause();
        sink.once('drain', () => z.resume());
      }
    });
    z.once('end', () => sink.end());
    z.once('error', () => sink.destroy());
  }

  write(chunk: Buffer, resume: (() => void) | undefined): boolean {
    const ok = this.z.write(chunk);
    if (this.flushEach) {
      if (this.flushKind === undefined) this.z.flush();
      else this.z.flush(this.flushKind);
    }
    if (ok) return true;
    if (resume) this.z.once('drain', resume);
    return false;
  }

  end(): void {
    this.z.end();
  }

  destroy(): void {
    this.z.destroy();
  }
}

/**
 * An HTTP/1.1 answer's head (a flat list) edited by the app's policies: response fields, then
 * compression (Content-Encoding, Vary, a weak ETag, no Content-Length). Returns the list and,
 * when the body is compressed, the encoder it goes through to `sink`.
 */
export function editFlatHead(
  status: number,
  headers: string[],
  edge: EdgeRequest,
  sink: Sink,
): { headers: string[]; encoder: Encoder | undefined } {
  const edited = edge.policy.response ? edge.policy.response.flat(headers) : headers;
  const encoding = edge.encoding;
  if (encoding === undefined) return { headers: edited, encoder: undefined };
  let type: string | undefined;
  let coding: string | undefined;
  let length = -1;
  let cacheControl: string | undefined;
  for (let i = 0; i + 1 < edited.length; i += 2) {
    const name = edited[i]!.toLowerCase();
    if (name === 'content-type') type = edited[i + 1];
    else if (name === 'cache-control') cacheControl = edited[i + 1];
    else if (name === 'content-encoding') coding = edited[i + 1];
    else if (name === 'content-length')
      length = /^\d{1,15}$/.test(edited[i + 1]!) ? Number(edited[i + 1]) : -1;
  }
  if (
    !compressesAnswer({
      status,
      contentType: type,
      contentEncoding: coding,
      contentLength: length,
      cacheControl,
    })
  )
    return { headers: edited, encoder: undefined };
  const out: string[] = [];
  let vary: string | undefined;
  for (let i = 0; i + 1 < edited.length; i += 2) {
    const name = edited[i]!.toLowerCase();
    const value = edited[i + 1]!;
    if (name === 'content-length' || name === 'content-encoding') continue;
    if (name === 'vary') vary = vary === undefined ? value : `${vary}, ${value}`;
    else if (name === 'etag') out.push(edited[i]!, weakETag(value));
    else out.push(edited[i]!, value);
  }
  out.push('content-encoding', encoding, 'vary', varyWithEncoding(vary));
  return { headers: out, encoder: encoderFor(encoding, sink, length) };
}

/** The same for an HTTP/2 head (one object of lower-case names), edited in place. */
export function editObjectHead(
  status: number,
  headers: OutgoingHttpHeaders,
  edge: EdgeRequest,
  sink: Sink,
): Encoder | undefined {
  edge.policy.response?.object(headers);
  const encoding = edge.encoding;
  if (encoding === undefined) return undefined;
  const length = headers['content-length'];
  const head = {
    status,
    contentType: one(headers['content-type']),
    contentEncoding: one(headers['content-encoding']),
    contentLength: typeof length === 'string' && /^\d{1,15}$/.test(length) ? Number(length) : -1,
    cacheControl: one(headers['cache-control']),
  };
  if (!compressesAnswer(head)) return undefined;
  delete headers['content-length'];
  const etag = one(headers.etag);
  if (etag !== undefined) headers.etag = weakETag(etag);
  const vary = headers.vary;
  headers.vary = varyWithEncoding(Array.isArray(vary) ? vary.join(', ') : one(vary));
  headers['content-encoding'] = encoding;
  return encoderFor(encoding, sink, head.contentLength);
}

/** A request's fields for the instance, edited by the app's policies (and with what they set). */
export function editRequestHeaders(headers: string[], edge: EdgeRequest): string[] {
  if (edge.policy.request === undefined && edge.extra === undefined) return headers;
  return (edge.policy.request ?? NO_EDITS).flat(headers, edge.extra);
}

function one(v: OutgoingHttpHeaders[string]): string | undefined {
  if (v === undefined) return undefined;
  return Array.isArray(v) ? v[0] : String(v);
}
