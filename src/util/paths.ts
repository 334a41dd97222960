import { existsSync, readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

/** The folder of arr's package.json: where the sample certificates and apps live. */
export const packageRoot: string = (() => {
  let dir = dirname(fileURLToPath(import.meta.url));
  while (!existsSync(join(dir, 'package.json'))) {
    const up = dirname(dir);
    if (up === dir) throw new Error('arr: cannot find its package folder');
    dir = up;
  }
  return dir;
})();

export const DEFAULT_CERT = join(packageRoot, 'certs', 'default-cert.pem');
export const DEFAULT_KEY = join(packageRoot, 'certs', 'default-key.pem');

/** arr's own version, from its package.json (not the one of whatever project runs it). */
export function packageVersion(): string {
  try {
    const pkg = JSON.parse(readFileSync(join(packageRoot, 'package.json'), 'utf8')) as { version?: unknown };
    return typeof pkg.version === 'string' ? pkg.version : 'unknown';
  } catch {
    return 'unknown';
  }
}
