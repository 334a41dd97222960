// The floor of a reverse proxy written for Node.js: node:http and node:https in front (arr's
// certificate), undici's raw dispatch behind (flat header lists, one kept-alive pool, the same
// X-Forwarded-* fields as arr), and WebSocket upgrades written to the app by hand and the two
// sockets piped, as arr does. On H2PORT, HTTP/2 (node:http2's stream API, as arr uses it) to the
// same undici pool. No routing, no policy, no limits, no bookkeeping: whatever arr spends beyond
// this is arr's own; what this spends beyond nginx is Node's.
//
//   PORT=8080 SSLPORT=8443 H2PORT=8444 TARGET=40000 CERT=certs/default-cert.pem \
//     KEY=certs/default-key.pem node dist/bench/floors/proxy.js

import { readFileSync } from 'node:fs';
import { createServer as createHttp, type IncomingMessage, type ServerResponse } from 'node:http';
import { createSecureServer, type IncomingHttpHeaders, type ServerHttp2Stream } from 'node:http2';
import { createServer as createHttps } from 'node:https';
import { connect, type Socket } from 'node:net';
import type { Duplex } from 'node:stream';
import { type Dispatcher, Pool } from 'undici';
import { runUntilSignal } from './servers.js';

const env = process.env;
const target = Number(env.TARGET);
const pool = new Pool(`http://127.0.0.1:${target}`, { bodyTimeout: 0 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te']);

class Exchange implements Dispatcher.DispatchHandler {
  private resume: (() => void) | undefined;
  constructor(private readonly res: ServerResponse) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[], resume: () => void, statusText: string): boolean {
    const headers: string[] = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1');
      if (!HOP.has(name.toLowerCase())) headers.push(name, raw[i + 1]!.toString('latin1'));
    }
    this.res.writeHead(status, statusText, headers);
    this.resume = resume;
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (this.res.write(chunk)) return true;
    if (this.resume) this.res.once('drain', this.resume);
    return false;
  }
  onComplete(): void {
    this.res.end();
  }
  onError(): void {
    if (this.res.headersSent) this.res.destroy();
    else this.res.writeHead(502).end();
  }
}

/** The client's fields less hop-by-hop ones, with Host and the X-Forwarded-* fields arr sets. */
function forwardHeaders(req: IncomingMessage, proto: string): string[] {
  const raw = req.rawHeaders;
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (!HOP.has(lower) && lower !== 'host' && !lower.startsWith('x-forwarded-'))
      out.push(raw[i]!, raw[i + 1]!);
  }
  const host = req.headers.host ?? '';
  out.push('host', host, 'x-forwarded-for', req.socket.remoteAddress ?? '', 'x-forwarded-proto', proto);
  out.push('x-forwarded-host', host, 'x-forwarded-port', String(req.socket.localPort ?? ''));
  return out;
}

function proxy(proto: string) {
  return (req: IncomingMessage, res: ServerResponse): void => {
    const bodyless = req.method === 'GET' || req.method === 'HEAD';
    pool.dispatch(
      {
        path: req.url ?? '/',
        method: req.method ?? 'GET',
        headers: forwardHeaders(req, proto),
        body: bodyless ? null : req,
      },
      new Exchange(res),
    );
  };
}

/** The upgrade request written to the app as it came (plus X-Forwarded-*), then bytes both ways. */
function upgrade(proto: string) {
  return (req: IncomingMessage, socket: Duplex, head: Buffer): void => {
    const up: Socket = connect({ host: '127.0.0.1', port: target, noDelay: true });
    const raw = req.rawHeaders;
    let text = `${req.method} ${req.url} HTTP/1.1\r\n`;
    for (let i = 0; i < raw.length; i += 2) text += `${raw[i]}: ${raw[i + 1]}\r\n`;
    text += `x-forwarded-for: ${req.socket.remoteAddress}\r\nx-forwarded-proto: ${proto}\r\n\r\n`;
    up.write(text);
    if (head.length > 0) up.write(head);
    socket.on('error', () => up.destroy());
    up.on('error', () => socket.destroy());
    up.pipe(socket);
    socket.pipe(up);
  };
}

/** An HTTP/2 answer: the instance's head as one object, the body written to the stream. */
class H2Exchange implements Dispatcher.DispatchHandler {
  private resume: (() => void) | undefined;
  constructor(private readonly stream: ServerHttp2Stream) {}
  onConnect(): void {}
  onHeaders(status: number, raw: Buffer[], resume: () => void): boolean {
    const headers: Record<string, string | string[]> = Object.create(null);
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i]!.toString('latin1').toLowerCase();
      if (HOP.has(name)) continue;
      const value = raw[i + 1]!.toString('latin1');
      const prior = headers[name];
      headers[name] = prior === undefined ? value : ([] as string[]).concat(prior, value);
    }
    headers[':status'] = String(status);
    if (this.stream.destroyed) return false;
    this.stream.respond(headers);
    this.resume = resume;
    return true;
  }
  onData(chunk: Buffer): boolean {
    if (this.stream.write(chunk)) return true;
    if (this.resume) this.stream.once('drain', this.resume);
    return false;
  }
  onComplete(): void {
    if (!this.stream.writableEnded) this.stream.end();
  }
  onError(): void {
    if (this.stream.headersSent || this.stream.destroyed) this.stream.destroy();
    else this.stream.respond({ ':status': 502 }, { endStream: true });
  }
}

function h2Stream(stream: ServerHttp2Stream, h: IncomingHttpHeaders, _flags: number, raw: string[]): void {
  stream.on('error', () => {});
  const out: string[] = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i]!.toLowerCase();
    if (lower.charCodeAt(0) !== 58 && lower !== 'host' && !lower.startsWith('x-forwarded-'))
      out.push(raw[i]!, raw[i + 1]!);
  }
  const host = String(h[':authority'] ?? '');
  const socket = stream.session?.socket;
  out.push('host', host, 'x-forwarded-for', socket?.remoteAddress ?? '', 'x-forwarded-proto', 'https');
  out.push('x-forwarded-host', host, 'x-forwarded-port', String(socket?.localPort ?? ''));
  const method = String(h[':method']);
  pool.dispatch(
    {
      path: String(h[':path']),
      method,
      headers: out,
      body: stream.endAfterHeaders ? null : stream,
    },
    new H2Exchange(stream),
  );
}

const tls = {
  cert: readFileSync(env.CERT ?? 'certs/default-cert.pem'),
  key: readFileSync(env.KEY ?? 'certs/default-key.pem'),
};
const http = createHttp(proxy('http')).listen(Number(env.PORT ?? 0), '127.0.0.1');
http.on('upgrade', upgrade('http'));
const https = createHttps(tls, proxy('https')).listen(Number(env.SSLPORT ?? 0), '127.0.0.1');
https.on('upgrade', upgrade('https'));
const h2 = createSecureServer({ ...tls, settings: { maxConcurrentStreams: 128 } })
  .on('stream', h2Stream)
  .listen(Number(env.H2PORT ?? 0), '127.0.0.1');
runUntilSignal([http, https, h2], () => void pool.destroy());
