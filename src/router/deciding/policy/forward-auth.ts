import { Agent, errors, request } from 'undici';
import { type DownstreamRequest, isH2 } from '../../carrying/downstream.js';
import { HOP_BY_HOP, h2RequestHeaders, requestHeaders } from '../../carrying/headers.js';
import type { PolicyRefusal } from './refusal.js';

/** How long the auth service has to answer, head and body. */
export const FORWARD_AUTH_TIMEOUT_MS = 5_000;

/** The largest body of a refusal the auth service sends that is passed on to the client. */
const MAX_REFUSAL_BYTES = 64 * 1024;

/** Fields of the client's request that are not the auth service's: its framing and its host. */
const NOT_SENT = new Set(['host', 'content-length', 'content-type', 'expect']);

/** Fields of a refusal that are not passed on (Node frames the body again). */
const NOT_RETURNED = new Set([...HOP_BY_HOP, 'content-length', 'trailer']);

/**
 * `access.forwardAuth`: a GET to the auth service with the client's headers (the
 * list arr would send the instance, with its X-Forwarded-For/Proto/Host) and X-Forwarded-Method
 * and X-Forwarded-Uri, as Traefik and Caddy send them. A 2xx lets the request through with the
 * named response fields; any other answer is the client's, as it came; a failing or slow
 * service is a 502 or 504, never a pass.
 */
export class ForwardAuth {
  private readonly names: ReadonlySet<string>;

  constructor(
    private readonly url: string,
    responseHeaders: readonly string[],
    private readonly dispatcher: Agent,
  ) {
    this.names = new Set(responseHeaders);
  }

  /** The fields to add to the request ([name, value, ...], lower-case names), or the refusal. */
  async check(req: DownstreamRequest, secure: boolean): Promise<string[] | PolicyRefusal> {
    const forwarded = isH2(req) ? h2RequestHeaders(req, secure) : requestHeaders(req, secure);
    const headers: string[] = [];
    for (let i = 0; i + 1 < forwarded.length; i += 2) {
      if (!NOT_SENT.has(forwarded[i]!.toLowerCase())) headers.push(forwarded[i]!, forwarded[i + 1]!);
    }
    headers.push('x-forwarded-method', req.method ?? 'GET', 'x-forwarded-uri', req.url ?? '/');
    let answer: Awaited<ReturnType<typeof request>>;
    try {
      answer = await request(this.url, { method: 'GET', headers, dispatcher: this.dispatcher });
    } catch (err) {
      return failed(err);
    }
    const { statusCode, body } = answer;
    if (statusCode >= 200 && statusCode < 300) {
      body.dump().catch(() => {});
      const extra: string[] = [];
      for (const [name, value] of Object.entries(answer.headers)) {
        if (!this.names.has(name) || value === undefined) continue;
        extra.push(name, Array.isArray(value) ? value.join(', ') : value);
      }
      return extra;
    }
    let bytes: Buffer;
    try {
      bytes = await readAtMost(body, MAX_REFUSAL_BYTES);
    } catch (err) {
      return failed(err);
    }
    const out: Record<string, string> = {};
    for (const [name, value] of Object.entries(answer.headers)) {
      if (value === undefined || NOT_RETURNED.has(name)) continue;
      out[name] = Array.isArray(value) ? value.join(', ') : value;
    }
    return {
      status: statusCode,
      message: `the auth service answered ${statusCode}`,
      reason: 'forward_auth',
      headers: out,
      body: bytes,
    };
  }
}

/** The dispatcher of auth requests: its own connections, with the service's timeouts. */
export function forwardAuthAgent(): Agent {
  return new Agent({
    headersTimeout: FORWARD_AUTH_TIMEOUT_MS,
    bodyTimeout: FORWARD_AUTH_TIMEOUT_MS,
    connectTimeout: FORWARD_AUTH_TIMEOUT_MS,
  });
}

function failed(err: unknown): PolicyRefusal {
  const slow =
    err instanceof errors.HeadersTimeoutError ||
    err instanceof errors.BodyTimeoutError ||
    err instanceof errors.ConnectTimeoutError;
  return slow
    ? { status: 504, message: 'the auth service did not answer in time', reason: 'forward_auth' }
    : { status: 502, message: 'the auth service failed', reason: 'forward_auth' };
}

async function readAtMost(body: AsyncIterable<Buffer> & { destroy(): void }, max: number): Promise<Buffer> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of body) {
    size += chunk.length;
    if (size > max) {
      body.destroy();
      throw new Error('the auth service answered with too large a body');
    }
    chunks.push(chunk);
  }
  return Buffer.concat(chunks);
}
