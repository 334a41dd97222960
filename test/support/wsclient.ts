import assert from 'node:assert/strict';
import { createHash } from 'node:crypto';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import { ObjectId } from 'mongodb';
import WebSocket from 'ws';
import { type AppDoc, type ArrUnderTest, fetchVia } from './arr.js';
import { until } from './poll.js';
import { alive } from './proc.js';

/** A WebSocket client connected through arr, with the messages it received so far. */
export interface WsClient {
  ws: WebSocket;
  messages: { data: Buffer; binary: boolean }[];
  /** The n-th message (0-based), waiting for it if it has not arrived yet. */
  message(n: number, timeoutMs?: number): Promise<{ data: Buffer; binary: boolean }>;
  /** Resolves when the connection is closed, with the close code and any error seen before. */
  closed: Promise<{ code: number; reason: string; error?: Error }>;
  /** The TCP connection under the WebSocket (under TLS for wss), e.g. for a reset. */
  tcp: Socket;
}

export interface WsOptions {
  path?: string;
  /** TLS: the SNI name (default: the host). */
  servername?: string;
  headers?: Record<string, string>;
  maxPayload?: number;
}

function wsOptions(
  host: string,
  secure: boolean,
  opts: WsOptions,
  onSocket: (tcp: Socket) => void = () => {},
): WebSocket.ClientOptions {
  return {
    headers: { host, ...opts.headers },
    ...(secure ? { servername: opts.servername ?? host, rejectUnauthorized: false } : {}),
    maxPayload: opts.maxPayload ?? 16 * 1024 * 1024,
    handshakeTimeout: 15_000,
    // The TCP socket is made here, so that a test can reach it under TLS.
    createConnection: ((o: { host: string; port: number }) => {
      const tcp = netConnect({ host: o.host, port: o.port });
      onSocket(tcp);
      return secure ? tlsConnect({ ...o, socket: tcp }) : tcp;
    }) as unknown as WebSocket.ClientOptions['createConnection'],
  };
}

function wsUrl(port: number, secure: boolean, path = '/ws'): string {
  return `${secure ? 'wss' : 'ws'}://127.0.0.1:${port}${path}`;
}

/** Opens a WebSocket to arr at 127.0.0.1:port with this Host header; resolves once open. */
export function openWs(port: number, host: string, secure: boolean, opts: WsOptions = {}): Promise<WsClient> {
  let tcp: Socket | undefined;
  const ws = new WebSocket(
    wsUrl(port, secure, opts.path),
    wsOptions(host, secure, opts, (s) => {
      tcp = s;
    }),
  );
  const messages: WsClient['messages'] = [];
  let error: Error | undefined;
  ws.on('message', (data, binary) => {
    const buf = Array.isArray(data) ? Buffer.concat(data) : Buffer.from(data as ArrayBuffer);
    messages.push({ data: buf, binary });
  });
  const closed = new Promise<{ code: number; reason: string; error?: Error }>((resolve) => {
    ws.on('close', (code, reason) => resolve({ code, reason: reason.toString('utf8'), error }));
  });
  return new Promise((resolve, reject) => {
    ws.on('error', (err) => {
      error = err;
      reject(err);
    });
    ws.on('unexpected-response', (_req, res) => {
      reject(new Error(`unexpected response ${res.statusCode}`));
      ws.terminate();
    });
    ws.once('open', () =>
      resolve({
        ws,
        messages,
        closed,
        tcp: tcp!,
        message: (n, timeoutMs = 10_000) =>
          until(`WebSocket message #${n}`, () => messages[n], { timeoutMs, intervalMs: 5 }),
      }),
    );
  });
}

/** What a refused upgrade got: the status and body of arr's answer. */
export function refusedUpgrade(
  port: number,
  host: string,
  secure: boolean,
  opts: WsOptions = {},
): Promise<{ status: number; body: string; headers: Record<string, unknown> }> {
  const ws = new WebSocket(wsUrl(port, secure, opts.path), wsOptions(host, secure, opts));
  return new Promise((resolve, reject) => {
    ws.on('open', () => {
      ws.terminate();
      reject(new Error(`the upgrade for ${host} was accepted`));
    });
    ws.on('error', reject);
    ws.on('unexpected-response', (_req, res) => {
      const chunks: Buffer[] = [];
      res.on('data', (c: Buffer) => chunks.push(c));
      res.on('error', reject);
      res.on('end', () => {
        resolve({
          status: res.statusCode ?? 0,
          body: Buffer.concat(chunks).toString('utf8'),
          headers: res.headers,
        });
        ws.terminate();
      });
    });
  });
}

/** Byte i of the hello sample's /bytes?n=N stream. */
const BLOCK = Buffer.alloc(251 * 256);
for (let i = 0; i < BLOCK.length; i++) BLOCK[i] = i % 251;

/** The sha256 of the first n bytes of the /bytes pattern, computed block by block. */
export function patternSha256(n: number): string {
  const hash = createHash('sha256');
  for (let left = n; left > 0; left -= BLOCK.length)
    hash.update(BLOCK.subarray(0, Math.min(left, BLOCK.length)));
  return hash.digest('hex');
}

/** n bytes of the /bytes pattern. */
export function pattern(n: number): Buffer {
  const out = Buffer.alloc(n);
  for (let off = 0; off < n; off += BLOCK.length) BLOCK.copy(out, off, 0, Math.min(BLOCK.length, n - off));
  return out;
}

/**
 * An app whose program is an inline ES module run by this node (`--input-type=module -e`).
 * It runs in arr's working directory (the repository root), so `import ... from 'ws'` resolves.
 */
export function inlineApp(script: string, hosts: AppDoc['hosts'], instances = 1): AppDoc {
  return {
    _id: new ObjectId(),
    process: { executable: process.execPath, args: ['--input-type=module', '-e', script] },
    hosts,
    instances,
  };
}

/** Signs in arr's output that an error escaped: a crash, an uncaught exception, a stack trace. */
export const CRASH = /uncaught|unhandled|\n\s+at .+:\d+:\d+\)?|ERR_[A-Z_]+.*\n\s+at |node:internal/i;

/**
 * arr survived whatever the test did: its process runs, its output shows no escaped error, and
 * it still answers a request for `host` on its plain port.
 */
export async function assertArrServes(arr: ArrUnderTest, host: string, secure = false): Promise<void> {
  assert.ok(alive(arr.proc.pid), `arr is alive\n--- arr output:\n${arr.proc.output()}`);
  assert.equal(arr.proc.child.exitCode, null, `arr has not exited\n--- arr output:\n${arr.proc.output()}`);
  const r = await fetchVia(secure ? arr.sslport : arr.port, host, secure);
  assert.equal(r.status, 200, `arr answers ${host} afterwards: ${r.status} ${r.text}`);
  assert.doesNotMatch(arr.proc.output(), CRASH, 'no escaped error in arr output');
}
