import { X509Certificate } from 'node:crypto';
import { readFileSync } from 'node:fs';
import { certificateSource } from './acme/qualify.js';
import { Preflight } from './activation/preflight.js';
import type { ArrConfig } from './config.js';
import type { ServingMode } from './farm/mode.js';
import type { ServiceNotifier } from './ops/systemd.js';
import type { Registry } from './registry/registry.js';
import { formatProblem, type Problem } from './registry/types.js';
import type { Listeners } from './router/accepting/listeners.js';
import type { CertificateStore } from './router/accepting/tls.js';
import { CertificateError, secureContextOf } from './util/certificates.js';
import type { Logger } from './util/log.js';
import { oneAtATime } from './util/one-at-a-time.js';
import { DEFAULT_CERT } from './util/paths.js';
import { readFailure, readRegularFile } from './util/read-limited.js';

/** What a reload acts on. */
export interface ReloadParts {
  config: ArrConfig;
  log: Logger;
  /** Where the default certificate is served from (worker processes read it again as they are replaced). */
  listeners: Pick<Listeners, 'setDefaultCertificate'>;
  certs: CertificateStore;
  mode: ServingMode;
  registry: Registry;
  notifier?: ServiceNotifier;
  /** Told of what the start checks found (the dashboard shows it). */
  onStartProblems?: (problems: Problem[]) => void;
  /** With workers: replaces them one at a time (the new code serves); says what it did. */
  replaceWorkers?: () => Promise<string>;
}

/**
 * The reload arr does on SIGHUP (and whoever else calls it): `--cert`/`--key` read again (kept as
 * they were when the new files cannot be used), the registry read again (the apps file, or
 * MongoDB), every host certificate in use read again, and the start checks run again. One at a
 * time; what was reloaded is logged in one line.
 */
export function reloader(parts: ReloadParts): () => Promise<void> {
  return oneAtATime(async () => {
    const { log, listeners, certs, mode, notifier } = parts;
    await notifier?.reloading();
    const done: string[] = [];
    const fresh = await readDefaultCertificate(parts.config);
    if (typeof fresh === 'string') {
      log.error(`reload: the default certificate is kept: ${fresh}`);
      done.push('default certificate kept (see the error above)');
    } else {
      listeners.setDefaultCertificate(fresh.cert, fresh.key);
      parts.config.cert = fresh.cert;
      parts.config.key = fresh.key;
      done.push(`default certificate read from ${parts.config.certFile}`);
    }
    await mode.reload();
    const apps = count(parts.registry.apps());
    done.push(`registry read (${apps} app${apps === 1 ? '' : 's'})`);
    const hosts = await certs.reload();
    done.push(
      `${hosts.reloaded} host certificate${hosts.reloaded === 1 ? '' : 's'} read again${hosts.failed > 0 ? `, ${hosts.failed} kept (see the errors above)` : ''}`,
    );
    if (parts.replaceWorkers) done.push(await parts.replaceWorkers());
    log.info(`reload: ${done.join('; ')}`);
    warnOfSampleCertificate(parts);
    checkApps(parts);
    await notifier?.ready('serving');
  });
}

/** The files of `--cert`/`--key` as they are now, or why they cannot be served. */
async function readDefaultCertificate(config: ArrConfig): Promise<{ cert: Buffer; key: Buffer } | string> {
  let cert: Buffer;
  let key: Buffer;
  try {
    [cert, key] = await Promise.all([readRegularFile(config.certFile), readRegularFile(config.keyFile)]);
  } catch (err) {
    return `cannot read --cert "${config.certFile}" or --key "${config.keyFile}" (${readFailure(err)})`;
  }
  try {
    secureContextOf(cert, key, config.certFile, config.keyFile);
  } catch (err) {
    if (err instanceof CertificateError) return err.message;
    throw err;
  }
  return { cert, key };
}

/**
 * What a start of each app would run into on this machine (programs, working directories,
 * users, certificates), logged as the registry's problems are; in the background, and never
 * fatal (a check that cannot be made is logged).
 */
export function checkApps(parts: Pick<ReloadParts, 'registry' | 'log' | 'onStartProblems'>): void {
  const preflight = new Preflight();
  const found: Problem[] = [];
  (async () => {
    for (const app of [...parts.registry.apps()]) {
      for (const p of await preflight.check(app)) {
        found.push(p);
        parts.log.warn(`registry: ${formatProblem(p)}`);
      }
    }
    parts.onStartProblems?.(found);
  })().catch((err: unknown) => parts.log.error({ err }, 'the checks of the apps at start failed'));
}

/** How many host names are named before "and N more". */
const NAMED_HOSTS = 5;

let sampleFingerprint: string | undefined;

/**
 * The sample certificate (certs/default-cert.pem) has its private key in arr's repository:
 * anyone can impersonate a host it is served for. Fine for `localhost` and `*.localhost`; for
 * any other name a warning says what to do.
 */
export function warnOfSampleCertificate(parts: Pick<ReloadParts, 'config' | 'registry' | 'log'>): void {
  const { config, registry, log } = parts;
  try {
    sampleFingerprint ??= new X509Certificate(readFileSync(DEFAULT_CERT)).fingerprint256;
    if (new X509Certificate(config.cert).fingerprint256 !== sampleFingerprint) return;
  } catch {
    return;
  }
  const exposed: string[] = [];
  for (const app of registry.apps())
    for (const h of app.hosts)
      if (
        h.ssl !== 'none' &&
        certificateSource(h, config.acme !== undefined) === 'default' &&
        h.host !== 'localhost' &&
        !h.host.endsWith('.localhost')
      )
        exposed.push(h.host);
  if (exposed.length === 0) return;
  const named = exposed.slice(0, NAMED_HOSTS).join(', ');
  const more = exposed.length > NAMED_HOSTS ? ` and ${exposed.length - NAMED_HOSTS} more` : '';
  log.warn(
    `the sample certificate (${DEFAULT_CERT}), whose private key is public, is served for ${named}${more}: give --cert and --key of your own, or turn on --acme-email`,
  );
}

function count(items: Iterable<unknown>): number {
  let n = 0;
  for (const _ of items) n++;
  return n;
}
