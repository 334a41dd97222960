import { constants } from 'node:fs';
import { access, stat } from 'node:fs/promises';
import { delimiter, isAbsolute, join, resolve } from 'node:path';
import type { App, Problem } from '../registry/types.js';
import { CertificateError, secureContextOf } from '../util/certificates.js';
import { readFailure, readRegularFile } from '../util/read-limited.js';
import { IdentityError, resolveIdentity } from './identity.js';

/**
 * What a start of the app would run into on this machine, found without starting it: host
 * certificates that cannot be read or do not fit their key, a `user` or `group` this machine does
 * not have, a program that does not exist or cannot be run, a `cwd` that is not a directory.
 * `arr validate` reports these, and arr logs them at start. Checks of files shared by many apps
 * (one certificate for every host, one program) are made once per `Preflight`.
 */
export class Preflight {
  private readonly memo = new Map<string, Promise<unknown>>();

  /** The problems of one app (`line`: its document's line in the apps file). */
  async check(app: App, line?: number): Promise<Problem[]> {
    const problems: Problem[] = [];
    const problem = (field: string, message: string) =>
      problems.push({ id: app.id, ...(line === undefined ? {} : { line }), field, message });
    for (const [i, h] of app.hosts.entries()) {
      if (h.cert === undefined || h.key === undefined) continue;
      const found = await this.once(`cert\0${h.cert}\0${h.key}`, () => certificateProblems(h.cert!, h.key!));
      for (const p of found) problem(`hosts[${i}].${p.field}`, p.message);
    }
    if (app.user !== undefined) {
      try {
        await resolveIdentity(app.user, app.group);
      } catch (err) {
        if (!(err instanceof IdentityError)) throw err;
        problem(err.field, err.message);
      }
    }
    const cwd = app.cwd === undefined ? undefined : resolve(app.cwd);
    const cwdProblem =
      cwd === undefined ? undefined : await this.once(`cwd\0${cwd}`, () => directoryProblem(cwd));
    if (cwdProblem) problem('cwd', `"${app.cwd}" ${cwdProblem}`);
    else if (app.edge?.redirect === undefined) {
      // A redirect app runs no program.
      const path = app.env?.PATH ?? process.env.PATH ?? '';
      const exe = app.process.executable;
      const why = await this.once(`exe\0${exe}\0${cwd ?? ''}\0${path}`, () =>
        programProblem(exe, cwd ?? process.cwd(), path),
      );
      if (why) problem('process.executable', `"${exe}" ${why}`);
    }
    return problems;
  }

  private once<T>(key: string, check: () => Promise<T>): Promise<T> {
    let p = this.memo.get(key) as Promise<T> | undefined;
    if (!p) {
      p = check();
      this.memo.set(key, p);
    }
    return p;
  }
}

/** Why a host's certificate and key cannot be served, by the field concerned; none when they can. */
async function certificateProblems(
  certFile: string,
  keyFile: string,
): Promise<{ field: 'cert' | 'key'; message: string }[]> {
  const read = async (file: string) => {
    try {
      return await readRegularFile(resolve(file));
    } catch (err) {
      return `cannot read "${file}" (${readFailure(err)})`;
    }
  };
  const [cert, key] = await Promise.all([read(certFile), read(keyFile)]);
  const unread = [
    ...(typeof cert === 'string' ? [{ field: 'cert' as const, message: cert }] : []),
    ...(typeof key === 'string' ? [{ field: 'key' as const, message: key }] : []),
  ];
  if (typeof cert === 'string' || typeof key === 'string') return unread;
  try {
    secureContextOf(cert, key, certFile, keyFile);
    return [];
  } catch (err) {
    if (err instanceof CertificateError) return [{ field: 'cert', message: err.message }];
    throw err;
  }
}

async function directoryProblem(dir: string): Promise<string | undefined> {
  try {
    return (await stat(dir)).isDirectory() ? undefined : 'is not a directory';
  } catch (err) {
    return `cannot be used (${(err as NodeJS.ErrnoException).code ?? 'unreadable'})`;
  }
}

/**
 * Why the program cannot be run, found as the system would find it: a name with a `/` against
 * the instance's working directory, a bare name on its PATH. Undefined when it can be.
 */
async function programProblem(exe: string, cwd: string, path: string): Promise<string | undefined> {
  if (exe.includes('/')) return executableProblem(isAbsolute(exe) ? exe : resolve(cwd, exe));
  const dirs = path.split(delimiter).filter((d) => d !== '');
  for (const dir of dirs)
    if ((await executableProblem(join(resolve(cwd, dir), exe))) === undefined) return undefined;
  return `is not found on the PATH (${dirs.join(delimiter) || 'empty'})`;
}

async function executableProblem(file: string): Promise<string | undefined> {
  try {
    const st = await stat(file);
    if (!st.isFile()) return 'is not a file';
    await access(file, constants.X_OK);
    return undefined;
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    return code === 'ENOENT'
      ? 'does not exist'
      : code === 'EACCES'
        ? 'is not executable (EACCES)'
        : `cannot be run (${code})`;
  }
}
