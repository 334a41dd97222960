import { readdirSync, readFileSync } from 'node:fs';
import { fileURLToPath } from 'node:url';

/**
 * The dashboard's page, script and style sheet: plain files that tsc does not compile, served
 * from the source tree next to the built module (dist/src/ops/dashboard -> src/ops/dashboard/page; package.json
 * `files` ships them). Read once, when the admin endpoint starts.
 */
export const DASHBOARD_DIR = fileURLToPath(new URL('../../../../src/ops/dashboard/page/', import.meta.url));

export interface StaticFile {
  type: string;
  body: Buffer;
}

const SCRIPT = 'text/javascript; charset=utf-8';

const FILES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/dashboard.js': ['dashboard.js', SCRIPT],
  '/dashboard.css': ['dashboard.css', 'text/css; charset=utf-8'],
};

/** The folder of the script's modules (page/dashboard/), served at /dashboard/NAME.js. */
const MODULES = 'dashboard/';

/** Whether a URL path is one of the page's files (they need no token: they hold no data). */
export function isDashboardPath(path: string): boolean {
  return Object.hasOwn(FILES, path) || (path.startsWith(`/${MODULES}`) && path.endsWith('.js'));
}

/** The files by URL path, or why they cannot be served (arr still serves the rest of the endpoint). */
export function loadDashboardFiles(dir = DASHBOARD_DIR): Map<string, StaticFile> | string {
  const files = new Map<string, StaticFile>();
  try {
    for (const [path, [name, type]] of Object.entries(FILES))
      files.set(path, { type, body: readFileSync(`${dir}${name}`) });
    for (const name of readdirSync(`${dir}${MODULES}`))
      if (name.endsWith('.js'))
        files.set(`/${MODULES}${name}`, { type: SCRIPT, body: readFileSync(`${dir}${MODULES}${name}`) });
  } catch (err) {
    return `the dashboard's files cannot be read from ${dir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  return files;
}
