/**
 * The catalogue of what can go wrong between arr and an instance, each with a stable code, and
 * the pure decisions that follow from one (another attempt or not, the client's answer). Errors
 * come from undici, node:net and http-proxy with codes of their own; `proxyError` reads them
 * once, here, so that the router, the engine and the upgrade path classify nothing themselves.
 * (Caddy's reverse proxy does the same with its typed dial errors and `tryAgain`.)
 */

/**
 * - `unreachable`: the instance is not there at all (nothing listens, no route to it): the
 *   request never reached it, so it can go to another instance.
 * - `timeout`: the instance did not begin its answer in time (`--proxy-timeout`).
 * - `body-timeout`: the client's body stalled (`--body-timeout`): the client's fault.
 * - `body-too-large`: the client's body passed the app's `maxBodySize` (an edge policy).
 * - `failed`: anything else after the request may have reached the instance (a reset, a hang
 *   up, an answer arr cannot read or pass on).
 */
export type ProxyErrorCode = 'unreachable' | 'timeout' | 'body-timeout' | 'body-too-large' | 'failed';

/** A failed exchange with an instance, classified; `cause` is what reported it. */
export class ProxyError extends Error {
  constructor(
    readonly code: ProxyErrorCode,
    message: string,
    /** The error code of the layer that reported it (ECONNREFUSED, UND_ERR_SOCKET...), for the log. */
    readonly detail?: string,
  ) {
    super(message);
    this.name = 'ProxyError';
  }
}

/** What the client is told, and what is counted, for each code. */
interface Entry {
  status: number;
  /** The answer's sentence to a request (plain HTTP, HTTP/2 stream). */
  message: string;
  /** The sentence to a refused WebSocket upgrade. */
  upgradeMessage: string;
  /** Whether it counts in arr_proxy_errors_total (a client's body is not the instance's failure). */
  counted: boolean;
  /** Whether the answer closes the connection: the request's body was left in the middle. */
  closes: boolean;
}

const CATALOGUE: Record<ProxyErrorCode, Entry> = {
  unreachable: {
    status: 502,
    message: 'the application is not reachable',
    upgradeMessage: 'the application is not reachable',
    counted: true,
    closes: false,
  },
  timeout: {
    status: 504,
    message: 'the application did not answer in time',
    upgradeMessage: 'the application failed',
    counted: true,
    closes: false,
  },
  'body-timeout': {
    status: 408,
    message: 'the request body did not arrive in time',
    upgradeMessage: 'the application failed',
    counted: false,
    closes: true,
  },
  'body-too-large': {
    status: 413,
    message: 'the request body is larger than this application takes',
    upgradeMessage: 'the application failed',
    counted: false,
    closes: true,
  },
  failed: {
    status: 502,
    message: 'the application failed to answer',
    upgradeMessage: 'the application failed',
    counted: true,
    closes: false,
  },
};

/** Codes of the layers below that mean the instance is not there (as opposed to failing mid-exchange). */
const UNREACHABLE = new Set([
  'ECONNREFUSED',
  'EHOSTUNREACH',
  'ENETUNREACH',
  'EADDRNOTAVAIL',
  'UND_ERR_CONNECT_TIMEOUT',
]);

/** undici's code for an instance that has not begun its answer within headersTimeout. */
const HEADERS_TIMEOUT = 'UND_ERR_HEADERS_TIMEOUT';

/** Any error an exchange failed with, as an entry of the catalogue. */
export function proxyError(err: unknown): ProxyError {
  if (err instanceof ProxyError) return err;
  const e = err as NodeJS.ErrnoException | null | undefined;
  const detail = typeof e?.code === 'string' ? e.code : undefined;
  const message = typeof e?.message === 'string' ? e.message : String(err);
  if (detail !== undefined && UNREACHABLE.has(detail)) return new ProxyError('unreachable', message, detail);
  if (detail === HEADERS_TIMEOUT) return new ProxyError('timeout', message, detail);
  return new ProxyError('failed', message, detail);
}

/** The client's answer to a request whose exchange failed with `error`. */
export function answerFor(error: ProxyError): { status: number; message: string; closes: boolean } {
  return CATALOGUE[error.code];
}

/**
 * The client's answer to a WebSocket upgrade whose exchange failed with `error`: always a 502
 * (an upgrade has no body to stall and no answer timeout: a WebSocket may be slow to open).
 */
export function upgradeAnswerFor(error: ProxyError): { status: number; message: string } {
  return { status: 502, message: CATALOGUE[error.code].upgradeMessage };
}

/** Whether the error counts as the instance's failure in the metrics. */
export function counted(error: ProxyError): boolean {
  return CATALOGUE[error.code].counted;
}

/** Whether the instance an error came from is gone (its connections closed, another one chosen). */
export function instanceGone(error: ProxyError): boolean {
  return error.code === 'unreachable';
}

/** How many instances one request may be sent to: the first, and one more if that one was gone. */
export const MAX_ATTEMPTS = 2;

/** What the retry decision needs to know of a request. */
export interface RetryRequest {
  method: string | undefined;
  /** Whether the client announced a body (it has been sent, at least in part, and is not kept). */
  body: boolean;
  /** Attempts made so far. */
  attempts: number;
}

/**
 * Whether a failed request goes to another instance: only when the instance was not there (the
 * request never reached it), the request is safe to send again (GET, HEAD or OPTIONS without a
 * body: nothing to replay) and it has attempts left.
 */
export function retryable(error: ProxyError, request: RetryRequest): boolean {
  if (error.code !== 'unreachable' || request.body || request.attempts >= MAX_ATTEMPTS) return false;
  const m = request.method;
  return m === 'GET' || m === 'HEAD' || m === 'OPTIONS';
}
