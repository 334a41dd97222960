import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { resolve } from 'node:path';
import type { CommandModule } from 'yargs';
import { lifetimeRenewal, type RenewalSource } from '../acme/ari.js';
import { FileAcmeStore } from '../acme/file-store.js';
import { type CertificateSource, certificateSource } from '../acme/qualify.js';
import type { AcmeStore, CertRecord } from '../acme/store.js';
import { ALL_OPTIONS, APPS_OPTIONS, type AppsArgs, type ArrArgs } from './arr-options.js';
import { commandContext } from './command-context.js';
import { acmeDirDefault } from './environment.js';
import { type ExitCode, openRegistry, type Print } from './registry-access.js';

export const certsCommand: CommandModule<ArrArgs, AppsArgs> = {
  command: 'certs',
  describe:
    'list every host of the registry (--apps or --mongo) with its certificate: own, acme or default; issuer, expiry, last error',
  builder: (y) => y.options(APPS_OPTIONS),
  handler: async (argv) => {
    const { mongo, print, printErr } = await commandContext(argv, ALL_OPTIONS);
    const acmeDir = resolve(argv['acme-dir'] ?? acmeDirDefault());
    const opts = { apps: argv.apps, mongo, json: !!argv.json, acmeDir, defaultCert: argv.cert };
    process.exit(await listCerts(opts, print, printErr));
  },
};

/** One host, as `arr certs --json` shows it. Never a private key. */
export interface CertView {
  host: string;
  app: string;
  /** own files, the ACME CA, or the default certificate. */
  source: CertificateSource;
  issuer?: string;
  /** ISO 8601. */
  expires?: string;
  serial?: string;
  /** The last failed order's message (ACME), or why the files cannot be read (own). */
  lastError?: string;
  /** ACME: an order failed and the next one goes no earlier than this (ISO 8601). */
  retryAt?: string;
  /** ACME: when the certificate is to be renewed (ISO 8601). */
  renewAt?: string;
  /** ACME: `ari` when that time is in the CA's suggested window (RFC 9773), `lifetime` at two thirds of it. */
  renewalSource?: RenewalSource;
}

function describe(pem: string | Buffer): { issuer: string; expires: string; serial: string } {
  const x = new X509Certificate(pem);
  return {
    issuer: x.issuer.replace(/\n/g, ', '),
    expires: new Date(Date.parse(x.validTo)).toISOString(),
    serial: x.serialNumber,
  };
}

/** When a stored certificate renews: as recorded, else (a record of before ARI) two thirds of its lifetime. */
function renewalOf(r: CertRecord): Pick<CertView, 'renewAt' | 'renewalSource'> {
  const x = new X509Certificate(r.cert!);
  const renewal =
    r.renewAt === undefined
      ? lifetimeRenewal(Date.parse(x.validFrom), Date.parse(x.validTo))
      : { renewAt: r.renewAt, source: r.renewalSource ?? 'lifetime' };
  return { renewAt: new Date(renewal.renewAt).toISOString(), renewalSource: renewal.source };
}

/** The farm's certificate store, with the MongoDB driver loaded only for it. */
async function mongoStore(url: string): Promise<AcmeStore> {
  const [{ MongoAcmeStore }, { databaseName }] = await Promise.all([
    import('../acme/mongo-store.js'),
    import('../registry/mongo-registry.js'),
  ]);
  return new MongoAcmeStore(url, databaseName(url));
}

/**
 * `arr certs`: every host of the registry, where its certificate comes from, its issuer and
 * expiry, and the last error of its orders. ACME on is assumed (the command is for farms that
 * run it): hosts that qualify show as `acme` even before their first certificate.
 */
export async function listCerts(
  opts: { apps: string; mongo?: string; json?: boolean; acmeDir: string; defaultCert: string },
  out: Print,
  err: Print,
): Promise<ExitCode> {
  const { registry, source } = await openRegistry(opts);
  const store = opts.mongo ? await mongoStore(opts.mongo) : new FileAcmeStore(opts.acmeDir);
  const views: CertView[] = [];
  try {
    await registry.load();
    const records = new Map<string, CertRecord>((await store.certs()).map((r) => [r.host, r]));
    const fallback = await readFile(opts.defaultCert).then(describe, () => undefined);
    for (const app of registry.apps()) {
      for (const rule of app.hosts) {
        if (registry.route(rule.host)?.app.id !== app.id) continue;
        const view: CertView = { host: rule.host, app: app.name, source: certificateSource(rule, true) };
        if (view.source === 'own') {
          try {
            Object.assign(view, describe(await readFile(resolve(rule.cert!))));
          } catch (e) {
            view.lastError = `cannot read ${rule.cert}: ${(e as Error).message}`;
          }
        } else if (view.source === 'acme') {
          const r = records.get(rule.host);
          if (r?.cert) {
            try {
              Object.assign(view, describe(r.cert), renewalOf(r));
            } catch {
              view.lastError = 'the stored certificate cannot be read';
            }
          }
          if (r?.lastError) view.lastError = r.lastError;
          if (r?.retryAt && r.retryAt > Date.now()) view.retryAt = new Date(r.retryAt).toISOString();
        } else if (fallback) {
          Object.assign(view, fallback);
        }
        views.push(view);
      }
    }
  } catch (e) {
    err(
      `arr: certs: cannot read the registry or the certificate store at ${source}: ${(e as Error).message}`,
    );
    return 1;
  } finally {
    await registry.close().catch(() => {});
    await store.close().catch(() => {});
  }
  views.sort((a, b) => (a.host < b.host ? -1 : a.host > b.host ? 1 : 0));
  if (opts.json) {
    out(JSON.stringify(views, null, 2));
    return 0;
  }
  const header = ['HOST', 'APP', 'SOURCE', 'ISSUER', 'EXPIRES', 'RENEWS', 'LAST ERROR'];
  const rows = [
    header,
    ...views.map((v) => [
      v.host,
      v.app,
      v.source,
      v.issuer ?? '-',
      v.expires ?? '-',
      v.renewAt ? `${v.renewAt} (${v.renewalSource})` : '-',
      v.lastError ? `${v.lastError}${v.retryAt ? ` (next try ${v.retryAt})` : ''}` : '',
    ]),
  ];
  const widths = header.map((_, c) => Math.max(...rows.map((r) => r[c]!.length)));
  for (const r of rows)
    out(
      r
        .map((cell, c) => cell.padEnd(widths[c]!))
        .join('  ')
        .trimEnd(),
    );
  return 0;
}
