import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request as httpRequest, type IncomingHttpHeaders, type IncomingMessage } from 'node:http';
import { request as httpsRequest } from 'node:https';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { BSON, MongoClient, ObjectId } from 'mongodb';
import { freePorts, freeRange } from './ports.js';
import { type Running, repoRoot, startArr } from './proc.js';

/** The hello sample: a short text answer naming its app, port and pid; /ws echoes. */
export const HELLO = join(repoRoot, 'samples/hello/server.js');

/** An application document as tests write them; `_id` is made when missing. */
export interface AppDoc {
  _id?: ObjectId | string;
  name?: string;
  process: { executable: string; args?: string[] };
  hosts: { host: string; ssl: string; cert?: string; key?: string }[];
  instances?: number;
  machines?: { host: string; port: number }[];
  user?: string;
  group?: string;
  env?: Record<string, string>;
  cwd?: string;
  ready?: string;
  stopTimeout?: number;
  revision?: number;
  protocol?: string;
  limits?: Record<string, unknown>;
  health?: Record<string, unknown>;
  recycle?: Record<string, unknown>;
}

/** The hello sample as an app document, with its host names. */
export function helloApp(name: string, hosts: AppDoc['hosts'], instances = 1): AppDoc {
  return {
    _id: new ObjectId(),
    process: { executable: process.execPath, args: [HELLO, name] },
    hosts,
    instances,
  };
}

/**
 * A hello app named `name` on `<name>.localhost`, with a second host, `probe-<name>.localhost`,
 * whose policy answers before anything starts (`none` asked over TLS: 403; `required` asked over
 * plain HTTP: 301): asking the probe tells whether a node routes the app, and starts nothing.
 */
export function probedApp(
  name: string,
  instances: number,
  probeSsl: 'none' | 'required',
): { doc: AppDoc; host: string; probe: string } {
  const host = `${name}.localhost`;
  const probe = `probe-${host}`;
  const hosts = [
    { host, ssl: 'allowed' },
    { host: probe, ssl: probeSsl },
  ];
  return { doc: { ...helloApp(name, hosts, instances), machines: [] }, host, probe };
}

export interface ArrUnderTest {
  proc: Running;
  port: number;
  sslport: number;
  range: [number, number];
  /** Where the apps file is (file registry), for tests that edit it. */
  appsFile?: string;
  /** Milliseconds from spawning arr to its being ready (see `ArrOptions.ready`). */
  startMs: number;
  stop(): Promise<number | string>;
}

export interface ArrOptions {
  /** Use the MongoDB registry at this URL (apps are inserted there) instead of a file. */
  mongo?: string;
  rangeSize?: number;
  extraArgs?: string[];
  env?: NodeJS.ProcessEnv;
  /** Address arr binds and advertises; default 127.0.0.1. */
  address?: string;
  /** Leave the registry as it is (another node of the farm provided the apps). */
  keepApps?: boolean;
  /** Serve this apps file as it is (the caller made it and removes it). */
  file?: string;
  /** Options of node itself, before arr's script (the benchmark's `--cpu-prof`). */
  nodeArgs?: string[];
  /** arr's stdout goes to this file (then give `ready`: the output does not have it). */
  stdoutFile?: string;
  /** A command that runs arr, such as `setpriv --ambient-caps ...` (see startArr). */
  via?: string[];
  /** Listen on these ports and use this range (a node restarted as it was). */
  ports?: [number, number];
  range?: [number, number];
  /**
   * Resolves when arr is ready; default: when it prints "arr listening on" (log level info).
   * The benchmark polls the port instead, at log level warn.
   */
  ready?: (arr: { proc: Running; port: number; sslport: number }) => Promise<unknown>;
}

/** Writes apps to a temporary apps.json (one document per line), or inserts them into MongoDB. */
export async function provideApps(apps: AppDoc[], mongo?: string): Promise<string | undefined> {
  const docs = apps.map((a) => ({ ...a, _id: a._id ?? new ObjectId(), machines: a.machines ?? [] }));
  if (mongo) {
    const client = new MongoClient(mongo);
    try {
      const col = client.db().collection('apps');
      await col.deleteMany({});
      if (docs.length > 0) await col.insertMany(docs as never[]);
    } finally {
      await client.close();
    }
    return undefined;
  }
  return writeAppsFile(join(mkdtempSync(join(tmpdir(), 'arr-apps-')), 'apps.json'), docs);
}

/** Writes an apps file: one extended-JSON document per line. */
export function writeAppsFile(file: string, docs: AppDoc[]): string {
  writeFileSync(file, `${docs.map((d) => BSON.EJSON.stringify(d, { relaxed: true })).join('\n')}\n`);
  return file;
}

/** Starts the real arr CLI on free ports with these apps and waits until it listens. */
export async function startArrWith(apps: AppDoc[], opts: ArrOptions = {}): Promise<ArrUnderTest> {
  const address = opts.address ?? '127.0.0.1';
  const appsFile = opts.file ?? (opts.keepApps ? undefined : await provideApps(apps, opts.mongo));
  const [port, sslport] = opts.ports ?? (await freePorts(2, address));
  const range = opts.range ?? (await freeRange(opts.rangeSize ?? 20, address));
  const args = [
    '-p',
    String(port),
    '-s',
    String(sslport),
    '-r',
    `${range[0]}-${range[1]}`,
    '--bind',
    address,
    '--advertise',
    address,
    ...(opts.mongo ? ['-m', opts.mongo] : ['-a', appsFile!]),
    ...(opts.extraArgs ?? []),
  ];
  const t0 = performance.now();
  const proc = startArr(args, { env: opts.env, stdoutFile: opts.stdoutFile }, opts.nodeArgs, opts.via);
  await (opts.ready ?? ((a) => a.proc.waitFor('arr listening on')))({ proc, port: port!, sslport: sslport! });
  return {
    proc,
    port: port!,
    sslport: sslport!,
    range,
    appsFile,
    startMs: performance.now() - t0,
    stop: async () => {
      const code = await proc.stop('SIGTERM', 15_000);
      if (appsFile && !opts.file) rmSync(join(appsFile, '..'), { recursive: true, force: true });
      return code;
    },
  };
}

export interface Reply {
  status: number;
  headers: IncomingHttpHeaders;
  body: Buffer;
  text: string;
}

export interface FetchOptions {
  method?: string;
  path?: string;
  headers?: Record<string, string>;
  body?: Buffer | string;
  /** TLS: the SNI name to send (default: the host). */
  servername?: string;
  timeoutMs?: number;
}

/**
 * One request to arr at 127.0.0.1:port with the given Host header, without DNS and without
 * connection reuse; over TLS when `secure`, accepting the samples' self-signed certificates.
 */
export function fetchVia(
  port: number,
  host: string,
  secure: boolean,
  opts: FetchOptions = {},
  address = '127.0.0.1',
): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const common = {
      host: address,
      port,
      method: opts.method ?? 'GET',
      path: opts.path ?? '/',
      // An empty host means: send no Host header at all.
      headers: host ? { host, ...opts.headers } : { ...opts.headers },
      setHost: host !== '',
      agent: false as const,
    };
    const req = secure
      ? httpsRequest({ ...common, servername: opts.servername ?? host, rejectUnauthorized: false })
      : httpRequest(common);
    req.setTimeout(opts.timeoutMs ?? 30_000, () => req.destroy(new Error('request timed out')));
    req.on('error', reject);
    req.on('response', (res) => readReply(res).then(resolve, reject));
    req.end(opts.body);
  });
}

/** A whole response, read into memory. */
export function readReply(res: IncomingMessage): Promise<Reply> {
  return new Promise((resolve, reject) => {
    const chunks: Buffer[] = [];
    res.on('data', (c: Buffer) => chunks.push(c));
    res.on('error', reject);
    res.on('end', () => {
      const body = Buffer.concat(chunks);
      resolve({ status: res.statusCode ?? 0, headers: res.headers, body, text: body.toString('utf8') });
    });
  });
}

/** The pid a hello instance reports in its answer. */
export function pidOf(reply: Reply): number {
  const m = /pid (\d+)/.exec(reply.text);
  if (!m) throw new Error(`no pid in reply ${reply.status}: ${reply.text}`);
  return Number(m[1]);
}
