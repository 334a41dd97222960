// Deploys under load: an app that tells its version, keep-alive clients that never stop asking,
// and WebSockets held open across a replacement.
import { Agent, request } from 'node:http';
import { join } from 'node:path';
import WebSocket from 'ws';
import type { AppDoc } from './arr.js';
import { until } from './poll.js';
import { repoRoot } from './proc.js';

/**
 * An app that answers every request with JSON {version, pid, cwd, early} (`early`: answered
 * before READY_AFTER_MS from its start), `GET /ready` with 503 until then, greets each
 * WebSocket with `hello VERSION PID` and echoes; on SIGTERM it closes its WebSockets with 1001.
 * CRASH set: it prints a line and exits at once.
 */
export const VERSIONED_APP = `
const http = require('node:http');
const { WebSocketServer } = require(${JSON.stringify(join(repoRoot, 'node_modules', 'ws'))});
const started = Date.now();
const version = process.env.VERSION || 'none';
const readyAfter = Number(process.env.READY_AFTER_MS || 0);
if (process.env.CRASH) {
  console.error('version ' + version + ' crashes on purpose');
  process.exit(3);
}
const server = http.createServer((req, res) => {
  const early = Date.now() - started < readyAfter;
  if (req.url === '/ready') {
    res.statusCode = early ? 503 : 200;
    return res.end();
  }
  res.setHeader('content-type', 'application/json');
  res.end(JSON.stringify({ version, pid: process.pid, cwd: process.cwd(), early, secret: process.env.SECRET }));
});
const wss = new WebSocketServer({ server });
wss.on('connection', (ws) => {
  ws.send('hello ' + version + ' ' + process.pid);
  ws.on('message', (m) => ws.send(m));
});
process.on('SIGTERM', () => {
  for (const c of wss.clients) c.close(1001, 'going away');
  server.close();
  setTimeout(() => process.exit(0), 200).unref();
});
server.listen(Number(process.env.PORT));
`;

export interface Answer {
  version: string;
  pid: number;
  cwd: string;
  early: boolean;
  secret?: string;
}

export interface Load {
  /** Every answer so far, per client, in order. */
  answers: Answer[][];
  /** Requests that failed: no answer, a status other than 200, or a body that is not an answer. */
  failures: string[];
  /** Stops the clients and resolves when the last request is answered. */
  stop(): Promise<void>;
  /** Resolves when an answer of this version has come (to any client). */
  total(): number;
}

/** Waits until the load has had `n` more answers than now: what follows a change is seen. */
export async function moreAnswers(load: Load, n = 20): Promise<void> {
  const from = load.total();
  await until(`${n} more answers`, () => load.total() >= from + n);
}

/** `clients` keep-alive clients asking for `host` through arr, one request after the other, until stopped. */
export function startLoad(port: number, host: string, clients = 4, address = '127.0.0.1'): Load {
  const agent = new Agent({ keepAlive: true, maxSockets: clients });
  const answers: Answer[][] = Array.from({ length: clients }, () => []);
  const failures: string[] = [];
  let stopped = false;
  const one = (mine: Answer[]) =>
    new Promise<void>((resolve) => {
      const req = request({ host: address, port, path: '/', headers: { host }, agent }, (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (c: Buffer) => chunks.push(c));
        res.on('error', (err) => {
          failures.push(`response error: ${err.message}`);
          resolve();
        });
        res.on('end', () => {
          const text = Buffer.concat(chunks).toString();
          if (res.statusCode !== 200) failures.push(`${res.statusCode}: ${text}`);
          else {
            try {
              mine.push(JSON.parse(text) as Answer);
            } catch {
              failures.push(`not an answer: ${text}`);
            }
          }
          resolve();
        });
      });
      req.setTimeout(20_000, () => req.destroy(new Error('timeout')));
      req.on('error', (err) => {
        failures.push(`request error: ${err.message}`);
        resolve();
      });
      req.end();
    });
  const loops = answers.map(async (mine) => {
    while (!stopped) await one(mine);
  });
  return {
    answers,
    failures,
    total: () => answers.reduce((n, a) => n + a.length, 0),
    stop: async () => {
      stopped = true;
      await Promise.all(loops);
      agent.destroy();
    },
  };
}

/** The last answer any client got. */
export function latest(load: Load): Answer | undefined {
  let best: Answer | undefined;
  for (const a of load.answers) if (a.length > 0) best = a[a.length - 1];
  return best;
}

/** Each client saw versions in the order given, never going back (old, then new). */
export function switchedOnce(load: Load, from: string, to: string): boolean {
  return load.answers.every((list) => {
    const seq = list.map((a) => a.version);
    const firstNew = seq.indexOf(to);
    return (
      seq.every((v) => v === from || v === to) && (firstNew < 0 || seq.slice(firstNew).every((v) => v === to))
    );
  });
}

/** A WebSocket through arr with the time it closed, once it does. */
export interface HeldWs {
  ws: WebSocket;
  greeting: string;
  closedAt: Promise<{ at: number; code: number }>;
}

/** Opens a WebSocket through arr at address:port for `host`; resolves with the app's greeting. */
export function holdWs(port: number, host: string, address = '127.0.0.1'): Promise<HeldWs> {
  const ws = new WebSocket(`ws://${address}:${port}/`, { headers: { host }, handshakeTimeout: 15_000 });
  const closedAt = new Promise<{ at: number; code: number }>((resolve) =>
    ws.on('close', (code) => resolve({ at: Date.now(), code })),
  );
  return new Promise((resolve, reject) => {
    ws.once('error', reject);
    ws.once('message', (data) => resolve({ ws, greeting: String(data), closedAt }));
  });
}

/** The versioned app as a document. */
export function versionedApp(
  name: string,
  env: Record<string, string>,
  extra: Partial<AppDoc> & Record<string, unknown> = {},
): AppDoc & Record<string, unknown> {
  return {
    name,
    process: { executable: process.execPath, args: ['-e', VERSIONED_APP] },
    hosts: [{ host: `${name}.localhost`, ssl: 'allowed' }],
    instances: 1,
    env,
    ...extra,
  };
}
