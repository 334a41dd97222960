import type { IncomingMessage, ServerResponse } from 'node:http';
import { PassThrough, type Readable } from 'node:stream';
import { Agent, type Dispatcher } from 'undici';
import { exchangeBegan, exchangeEnded, type Target } from '../activation/activator.js';
import type { App } from '../registry/types.js';
import { requestHeaders, responseHeaders } from './headers.js';

/** Where an exchange reports that an attempt failed: the router, which decides what follows. */
export interface ExchangeOwner {
  exchangeFailed(exchange: Exchange, err: NodeJS.ErrnoException): void;
}

/** undici's code for an instance that has not begun its answer within headersTimeout. */
export const TIMED_OUT = 'UND_ERR_HEADERS_TIMEOUT';

/**
 * Plain HTTP requests to instances, on undici: kept-alive connections per instance (an undici
 * Pool per origin, made and dropped by its Agent) and undici's HTTP/1.1 client, which costs
 * about half of what node's http.request does per request (docs/BENCHMARKS.md, "Engine").
 * Each exchange is driven by a handler of undici's raw dispatch interface: the instance's
 * header lines are handed on as read, with no header object built on either side.
 */
export class HttpEngine {
  private readonly agent: Agent;

  constructor(
    /** How long an instance has, after the last byte it was sent, to begin its answer. */
    timeoutMs: number,
  ) {
    this.agent = new Agent({
      headersTimeout: timeoutMs,
      // Once begun, an answer streams at the instance's pace (a long download, a slow feed).
      bodyTimeout: 0,
      // A connection to an instance that is not there fails at once on loopback; across a
      // farm, a node that vanished (no RST) is given up on after this.
      connectTimeout: 5_000,
      // The instance's own limit on a reply head is the client's concern; arr's is Node's.
      maxHeaderSize: 64 * 1024,
    });
  }

  /**
   * Sends the exchange's request to its target and the answer to the client. A failure goes to
   * the exchange's owner, once.
   */
  send(x: Exchange): void {
    const req = x.req;
    this.agent.dispatch(
      {
        origin: originOf(x.target!),
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers: requestHeaders(req, x.secure),
        body: hasBody(req) ? bodyOf(req) : null,
      },
      x,
    );
  }

  close(): void {
    void this.agent.destroy().catch(() => {});
  }
}

function originOf(t: Target): string {
  return t.host.includes(':') ? `http://[${t.host}]:${t.port}` : `http://${t.host}:${t.port}`;
}

/** Whether the client announced a body (Node has checked the framing already). */
export function hasBody(req: IncomingMessage): boolean {
  const length = req.headers['content-length'];
  return req.headers['transfer-encoding'] !== undefined || (length !== undefined && length !== '0');
}

/**
 * The request's body as undici is given it. undici destroys a body stream when the exchange
 * fails, and destroying a request that was not read to its end destroys the client's
 * connection with it: the client would get no answer (504, 502) at all. The body is therefore
 * piped through a stream of its own; once that is dropped, Node discards what is left of the
 * request before reading the client's next one.
 */
function bodyOf(req: IncomingMessage): Readable {
  const body = new PassThrough();
  req.pipe(body);
  // A client that sends less than it announced leaves the instance's request unfinished.
  req.once('close', () => {
    if (!req.complete) body.destroy(new Error('the client did not send its whole body'));
  });
  return body;
}

/**
 * One request and its answer, over one or more attempts (each with an instance: `target`).
 * An attempt that one side abandons is abandoned on the other: a client that goes away aborts
 * the request to the instance (so that nothing stays open behind it), and an instance that
 * breaks off its answer ends the client's connection (so the client does not wait for the
 * rest forever). The state of the current attempt is reset by `begin`.
 */
export class Exchange implements Dispatcher.DispatchHandler {
  /** The instance of the current attempt. */
  target: Target | undefined = undefined;
  /** Attempts begun so far. */
  attempts = 0;
  private abort: ((err?: Error) => void) | undefined = undefined;
  private resume: (() => void) | undefined = undefined;
  /** Whether the current attempt is over (answered, failed, or abandoned by the client). */
  private ended = false;
  /** Body bytes still to come by the answer's Content-Length; -1 when it has none. */
  private unread = -1;
  /** The body's last chunk, held for res.end(). */
  private last: Buffer | undefined = undefined;

  constructor(
    readonly req: IncomingMessage,
    readonly res: ServerResponse,
    readonly app: App,
    readonly secure: boolean,
    readonly owner: ExchangeOwner,
  ) {
    // One listener shared by every exchange (no closure per request): it finds this one on res.
    (res as ExchangeResponse)[EXCHANGE] = this;
    res.on('close', onClientClose);
  }

  /** A new attempt, with `target`; it counts as in flight there until the client's answer closes. */
  begin(target: Target): void {
    if (this.target) exchangeEnded(this.target);
    exchangeBegan(target);
    this.target = target;
    this.attempts++;
    this.abort = undefined;
    this.resume = undefined;
    this.ended = false;
    this.unread = -1;
    this.last = undefined;
  }

  /** The client's response closed: before the answer was complete, the attempt is abandoned. */
  clientClosed(): void {
    if (this.target) exchangeEnded(this.target);
    if (this.ended) return;
    this.ended = true;
    this.abort?.();
  }

  /** Whether the client has had the head of an answer (so an error can no longer be sent). */
  get answered(): boolean {
    return this.res.headersSent;
  }

  onConnect(abort: (err?: Error) => void): void {
    // The client may have gone while the request waited for a connection.
    if (this.ended) abort();
    else this.abort = abort;
  }

  onHeaders(
    status: number,
    raw: Buffer[] | string[] | null,
    resume: () => void,
    statusText: string,
  ): boolean {
    if (status < 200) return true; // 103 Early Hints and the like are not passed on
    this.resume = resume;
    const res = this.res;
    if (res.destroyed) return false;
    const headers = responseHeaders((raw ?? []) as Buffer[]);
    try {
      res.writeHead(status, statusText, headers);
    } catch (err) {
      // A header Node will not send (an invalid value): as if the instance had failed.
      this.abort?.(err as Error);
      return false;
    }
    this.unread = contentLength(headers);
    return true;
  }

  onData(chunk: Buffer): boolean {
    // The body's last chunk is kept for res.end(): a small answer's head, body and end then
    // leave in one system call, not a write followed by an end.
    if (this.unread >= 0) {
      this.unread -= chunk.length;
      if (this.unread === 0) {
        this.last = chunk;
        return true;
      }
    }
    if (this.res.write(chunk)) return true;
    if (this.resume) this.res.once('drain', this.resume);
    return false;
  }

  onComplete(trailers: Buffer[] | string[] | null): void {
    this.ended = true;
    const res = this.res;
    if (trailers && trailers.length > 0) addTrailers(res, trailers as Buffer[]);
    if (this.last) res.end(this.last);
    else res.end();
  }

  onError(err: Error): void {
    // Aborted because the client left: nothing to tell anyone.
    if (this.ended) return;
    this.ended = true;
    this.owner.exchangeFailed(this, err as NodeJS.ErrnoException);
  }
}

/** The Content-Length of a flat header list, or -1 (none, or not a plain number). */
function contentLength(headers: string[]): number {
  for (let i = 0; i < headers.length; i += 2) {
    const name = headers[i]!;
    if (name.length === 14 && name.toLowerCase() === 'content-length') {
      const value = headers[i + 1]!;
      return /^\d{1,15}$/.test(value) ? Number(value) : -1;
    }
  }
  return -1;
}

const EXCHANGE = Symbol('arr.exchange');
type ExchangeResponse = ServerResponse & { [EXCHANGE]?: Exchange };

function onClientClose(this: ExchangeResponse): void {
  this[EXCHANGE]?.clientClosed();
}

function addTrailers(res: ServerResponse, raw: Buffer[]): void {
  const trailers: [string, string][] = [];
  for (let i = 0; i + 1 < raw.length; i += 2)
    trailers.push([raw[i]!.toString('latin1'), raw[i + 1]!.toString('latin1')]);
  try {
    res.addTrailers(trailers);
  } catch {
    // an invalid trailer is dropped; the body is complete
  }
}
