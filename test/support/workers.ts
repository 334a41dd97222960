// arr with worker processes (`--workers N`): who is who in the process table, and which
// process holds which TCP connection (ss), to tell on which worker an exchange ran.
import { execFileSync } from 'node:child_process';
import { readdirSync, readFileSync } from 'node:fs';
import { request as httpRequest } from 'node:http';
import { connect as netConnect, type Socket } from 'node:net';
import { connect as tlsConnect } from 'node:tls';
import {
  type AppDoc,
  type ArrOptions,
  type ArrUnderTest,
  type Reply,
  readReply,
  startArrWith,
} from './arr.js';
import { until } from './poll.js';

/** Starts arr with `--workers N` and waits until it serves. */
export function startWithWorkers(apps: AppDoc[], workers = 2, opts: ArrOptions = {}): Promise<ArrUnderTest> {
  return startArrWith(apps, {
    ...opts,
    extraArgs: ['--workers', String(workers), ...(opts.extraArgs ?? [])],
  });
}

/** A process's command line as `ps` shows it (process.title rewrites it). */
export function titleOf(pid: number): string {
  return readFileSync(`/proc/${pid}/cmdline`, 'utf8').replace(/\0+$/, '').replace(/\0/g, ' ');
}

/** The children of `parent` whose title is `arr worker N`, by N. */
export function workersOf(parent: number): Map<number, number> {
  const found = new Map<number, number>();
  for (const entry of readdirSync('/proc')) {
    if (!/^\d+$/.test(entry)) continue;
    try {
      const stat = readFileSync(`/proc/${entry}/stat`, 'utf8');
      const fields = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
      if (Number(fields[1]) !== parent || fields[0] === 'Z') continue;
      const m = /^arr worker (\d+)$/.exec(titleOf(Number(entry)));
      if (m) found.set(Number(m[1]), Number(entry));
    } catch {
      // gone meanwhile
    }
  }
  return found;
}

/** Waits until `parent` has `count` workers serving; returns their pids by number. */
export async function waitForWorkers(parent: number, count: number): Promise<Map<number, number>> {
  return until(`${count} workers of ${parent}`, () => {
    const w = workersOf(parent);
    return w.size === count && w;
  });
}

/** The pids holding established TCP connections matching the ss filter (e.g. `dport = :8080`). */
export function connectionOwners(filter: string): number[] {
  const out = execFileSync('ss', ['-Htnp', 'state', 'established', filter], { encoding: 'utf8' });
  return [...out.matchAll(/pid=(\d+)/g)].map((m) => Number(m[1]));
}

/** The pid of arr's process that holds the server side of the client connection from `clientPort`. */
export function serverOf(arrPort: number, clientPort: number): number | undefined {
  return connectionOwners(`( sport = :${arrPort} and dport = :${clientPort} )`)[0];
}

/**
 * Waits until arr has read everything sent on each of `sockets` (its side of each connection has
 * nothing left in its receive queue): a request it has read is in flight, where one still in the
 * kernel's buffer is, to a server that begins to stop, an idle connection it may close.
 */
export async function requestsRead(arrPort: number, sockets: Iterable<Socket>): Promise<void> {
  for (const socket of sockets) {
    const local = socket.localPort!;
    await until(`arr read the request sent from :${local}`, () => {
      if (socket.bytesWritten === 0 || socket.writableLength > 0) return false;
      const line = execFileSync(
        'ss',
        ['-Htn', 'state', 'established', `( sport = :${arrPort} and dport = :${local} )`],
        { encoding: 'utf8' },
      ).trim();
      return line !== '' && line.split(/\s+/)[0] === '0';
    });
  }
}

/**
 * One connection to arr's `port` held by each of `workers` (pids), plain or TLS: connections are
 * opened one after another until every worker has accepted one (the kernel decides which worker
 * accepts, so a few may be needed); the extra ones are closed. Requests are then sent on them
 * with `requestOn`, to put exchanges on chosen workers.
 */
export async function connectionPerWorker(
  port: number,
  workers: number[],
  secure: boolean,
  host: string,
  max = 200,
): Promise<Map<number, Socket>> {
  const held = new Map<number, Socket>();
  for (let i = 0; i < max && held.size < workers.length; i++) {
    const socket = await openConnection(port, secure, host);
    const local = socket.localPort!;
    const owner = await until(`the worker holding the connection from :${local}`, () =>
      serverOf(port, local),
    );
    if (workers.includes(owner) && !held.has(owner)) held.set(owner, socket);
    else socket.destroy();
  }
  if (held.size < workers.length) {
    for (const s of held.values()) s.destroy();
    throw new Error(`${max} connections to :${port} reached only workers ${[...held.keys()]} of ${workers}`);
  }
  return held;
}

function openConnection(port: number, secure: boolean, host: string): Promise<Socket> {
  return new Promise((resolve, reject) => {
    const socket = secure
      ? tlsConnect({
          port,
          host: '127.0.0.1',
          servername: host,
          rejectUnauthorized: false,
          ALPNProtocols: ['http/1.1'],
        })
      : netConnect({ port, host: '127.0.0.1' });
    socket.once(secure ? 'secureConnect' : 'connect', () => resolve(socket));
    socket.once('error', reject);
  });
}

/** One request on a connection opened by `connectionPerWorker`; the connection ends with it. */
export function requestOn(socket: Socket, host: string, path = '/'): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const req = httpRequest({
      path,
      headers: { host, connection: 'close' },
      createConnection: () => socket, // with no agent: the request goes on this connection
    });
    req.setTimeout(30_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.on('response', (res) => readReply(res).then(resolve, reject));
    req.end();
  });
}
