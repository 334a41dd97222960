import { createHash, randomBytes } from 'node:crypto';
import { type IncomingMessage, type OutgoingHttpHeaders, request } from 'node:http';
import type { ServerHttp2Stream } from 'node:http2';
import type { Socket } from 'node:net';
import type { Target } from '../../activation/target.js';
import { closeAfterAnswer, type H2Request } from './h2-messages.js';
import { HOP_BY_HOP } from './headers.js';
import { rejectUpgrade } from './respond.js';
import { closeTogether, type UpgradeOwner } from './upgrade-proxy.js';

/** RFC 6455 §1.3: what Sec-WebSocket-Accept is made from. */
const WS_GUID = '258EAFA5-E914-47DA-95CA-C5AB0DC85B11';

/** Fields of the instance's answer that describe its connection with arr, not the stream. */
const NOT_ANSWERED = new Set([...HOP_BY_HOP, 'sec-websocket-accept']);

/**
 * WebSockets over HTTP/2 (RFC 8441): an extended CONNECT with `:protocol: websocket`, admitted
 * by the router like an upgrade, is joined to an ordinary HTTP/1.1 WebSocket upgrade to the
 * instance (apps need not know HTTP/2). arr makes the instance side's Sec-WebSocket-Key and
 * checks its Accept; Sec-WebSocket-Version, -Protocol and -Extensions pass as the client sent
 * them, and the instance's choice of protocol and extensions comes back on the stream's 200.
 * Then bytes are relayed both ways with backpressure (pipes); either side ending or failing
 * ends the other. A refusal (3xx, 4xx, 5xx) is passed on as the stream's answer, with its body;
 * any other answer than 101 is a 502, never a 2xx: on a CONNECT stream that means a tunnel.
 */
export class H2WebSocketJoiner {
  constructor(private readonly owner: UpgradeOwner) {}

  /** `req` is an extended CONNECT's request, whose headers the router has prepared; its stream is the client's side. */
  join(req: H2Request, target: Target): void {
    const stream = req.stream;
    const key = randomBytes(16).toString('base64');
    const up = request({
      host: target.host,
      port: target.port,
      method: 'GET',
      path: req.url,
      headers: instanceHeaders(req, key),
      agent: false,
      setHost: false,
    });
    let answered = false;
    const abandon = () => up.destroy();
    stream.once('close', abandon);

    up.once('upgrade', (res: IncomingMessage, upstream: Socket, head: Buffer) => {
      answered = true;
      stream.off('close', abandon);
      upstream.on('error', () => upstream.destroy());
      if (stream.destroyed || !stream.writable) {
        upstream.destroy();
        return;
      }
      if (res.headers['sec-websocket-accept'] !== acceptFor(key)) {
        upstream.destroy();
        this.owner.upgradeFailed(stream, target, Object.assign(new Error('a wrong Sec-WebSocket-Accept')));
        return;
      }
      this.owner.upgradeAnswered(stream, 101);
      if (!respond(stream, answerHeaders(200, res))) {
        upstream.destroy();
        return;
      }
      if (head.length > 0) stream.write(head);
      stream.pipe(upstream);
      upstream.pipe(stream);
      closeTogether(stream, upstream);
    });

    up.once('response', (res: IncomingMessage) => {
      // The instance declined: its answer is the stream's, unless it is a 2xx, which on a
      // CONNECT stream means the tunnel is open (RFC 8441 §5, RFC 9110 §9.3.6): arr's 502.
      answered = true;
      const status = res.statusCode ?? 502;
      if (status < 300) {
        res.destroy();
        this.owner.upgradeAnswered(stream, 502);
        rejectUpgrade(stream, 502, `the application answered the WebSocket with ${status}, not 101`);
        return;
      }
      this.owner.upgradeAnswered(stream, status);
      if (stream.destroyed || stream.headersSent) {
        res.destroy();
        return;
      }
      if (!respond(stream, answerHeaders(status, res), true)) {
        res.destroy();
        return;
      }
      res.pipe(stream);
      res.once('close', () => {
        if (!res.complete) stream.destroy();
      });
    });

    up.on('error', (err: NodeJS.ErrnoException) => {
      if (!answered) this.owner.upgradeFailed(stream, target, err);
      else stream.destroy();
    });
    up.end();
  }
}

/** The instance's upgrade request: the client's fields (less pseudo-fields) and the handshake's. */
function instanceHeaders(req: H2Request, key: string): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = {};
  for (const [name, value] of Object.entries(req.headers)) {
    if (name.charCodeAt(0) === 58 /* : */ || value === undefined) continue;
    headers[name] = value;
  }
  headers.connection = 'Upgrade';
  headers.upgrade = 'websocket';
  headers['sec-websocket-key'] = key;
  headers['sec-websocket-version'] ??= '13';
  return headers;
}

function answerHeaders(status: number, res: IncomingMessage): OutgoingHttpHeaders {
  const headers: OutgoingHttpHeaders = { ':status': status };
  for (const [name, value] of Object.entries(res.headers)) {
    if (value !== undefined && !NOT_ANSWERED.has(name)) headers[name] = value;
  }
  return headers;
}

/**
 * Sends the stream's head; false (and the stream destroyed) when Node refuses it: a field HTTP/2
 * cannot carry, or a session already going. A refusal closes the stream once it is sent
 * (closeAfterAnswer): the client may never end its side of a CONNECT stream.
 */
function respond(stream: ServerHttp2Stream, headers: OutgoingHttpHeaders, refusal = false): boolean {
  try {
    if (refusal) closeAfterAnswer(stream, headers);
    else stream.respond(headers);
    return true;
  } catch {
    stream.destroy();
    return false;
  }
}

function acceptFor(key: string): string {
  return createHash('sha1')
    .update(key + WS_GUID)
    .digest('base64');
}
