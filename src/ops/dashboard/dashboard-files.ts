import { readFileSync } from 'node:fs';
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

const FILES: Record<string, [string, string]> = {
  '/': ['index.html', 'text/html; charset=utf-8'],
  '/dashboard.js': ['dashboard.js', 'text/javascript; charset=utf-8'],
  '/dashboard.css': ['dashboard.css', 'text/css; charset=utf-8'],
};

/** The files by URL path, or why they cannot be served (arr still serves the rest of the endpoint). */
export function loadDashboardFiles(dir = DASHBOARD_DIR): Map<string, StaticFile> | string {
  const files = new Map<string, StaticFile>();
  try {
    for (const [path, [name, type]] of Object.entries(FILES))
      files.set(path, { type, body: readFileSync(`${dir}${name}`) });
  } catch (err) {
    return `the dashboard's files cannot be read from ${dir} (${(err as NodeJS.ErrnoException).code ?? String(err)})`;
  }
  return files;
}
