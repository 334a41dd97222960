import { existsSync, mkdtempSync, rmSync } from 'node:fs';
import { homedir, tmpdir } from 'node:os';
import { join } from 'node:path';
import { MongoClient } from 'mongodb';
import { until } from './poll.js';
import { freePort } from './ports.js';
import { type Running, start } from './proc.js';

export const FERRETDB_VERSION = 'v1.24.2';

export interface MongoServer {
  /** A connection string whose database is this test's own. */
  url: string;
  /** A fresh database on the same server: `url` with another database name. */
  database(name: string): string;
  stop(): Promise<void>;
  /** Makes the server unreachable (FerretDB only: undefined for ARR_TEST_MONGO_URL). */
  interrupt?: () => Promise<void>;
  /** Brings it back on the same address with the same data. */
  resume?: () => Promise<void>;
  /** The server's pid while it runs (FerretDB only), for the benchmark's CPU figures. */
  pid?: () => number | undefined;
}

function ferretdbBinary(): string | undefined {
  const cache = process.env.ARR_FERRETDB_CACHE ?? join(homedir(), '.cache', 'arr');
  const candidates = [process.env.ARR_FERRETDB_BIN, join(cache, `ferretdb-${FERRETDB_VERSION}`)];
  return candidates.find((p): p is string => !!p && existsSync(p));
}

function withDatabase(url: string, name: string): string {
  const u = new URL(url);
  u.pathname = `/${name}`;
  return u.toString();
}

/**
 * Why the MongoDB suites cannot run here, or undefined when they can. Under CI=true a missing
 * server is an error, not a skip: CI must run these suites.
 */
export function mongoUnavailable(): string | undefined {
  if (process.env.ARR_TEST_MONGO_URL || ferretdbBinary()) return undefined;
  const why =
    'no MongoDB-wire server: set ARR_TEST_MONGO_URL, or run scripts/install-ferretdb.sh to build FerretDB';
  if (process.env.CI === 'true') throw new Error(`CI=true and ${why}`);
  console.warn(`\n!!! SKIPPING the MongoDB suites: ${why}\n`);
  return why;
}

/**
 * A real MongoDB-wire server for one test file: the one in ARR_TEST_MONGO_URL, or FerretDB
 * (SQLite backend) started on a free loopback port in a temporary folder and removed after.
 */
export async function startMongo(prefix: string): Promise<MongoServer> {
  const dbName = `${prefix}_${process.pid}_${Date.now().toString(36)}`.replace(/[^A-Za-z0-9_]/g, '_');
  const external = process.env.ARR_TEST_MONGO_URL;
  if (external) {
    return {
      url: withDatabase(external, dbName),
      database: (name) => withDatabase(external, `${dbName}_${name}`),
      stop: async () => {
        const c = new MongoClient(external);
        try {
          const dbs = await c.db().admin().listDatabases();
          for (const d of dbs.databases) if (d.name.startsWith(dbName)) await c.db(d.name).dropDatabase();
        } finally {
          await c.close();
        }
      },
    };
  }
  const bin = ferretdbBinary();
  if (!bin) throw new Error('FerretDB is not installed (scripts/install-ferretdb.sh)');
  const dir = mkdtempSync(join(tmpdir(), 'arr-ferretdb-'));
  const port = await freePort();
  const base = `mongodb://127.0.0.1:${port}/`;
  const launch = async (): Promise<Running> => {
    const server = start(bin, [
      '--handler=sqlite',
      `--sqlite-url=file:${dir}/`,
      `--state-dir=${dir}`,
      `--listen-addr=127.0.0.1:${port}`,
      '--telemetry=disable',
      '--debug-addr=-',
      '--log-level=warn',
    ]);
    await until(
      'FerretDB to answer',
      async () => {
        const c = new MongoClient(base, { serverSelectionTimeoutMS: 500 });
        try {
          await c.db('admin').command({ ping: 1 });
          return true;
        } finally {
          await c.close();
        }
      },
      { timeoutMs: 20_000, intervalMs: 100 },
    );
    return server;
  };
  let server: Running | undefined = await launch();
  return {
    url: withDatabase(base, dbName),
    database: (name) => withDatabase(base, `${dbName}_${name}`),
    interrupt: async () => {
      await server?.stop('SIGKILL');
      server = undefined;
    },
    resume: async () => {
      server ??= await launch();
    },
    pid: () => server?.pid,
    stop: async () => {
      await server?.stop('SIGTERM');
      rmSync(dir, { recursive: true, force: true });
    },
  };
}
