import { lstatSync, mkdirSync, readdirSync, realpathSync, type Stats } from 'node:fs';
import { dirname, join, resolve } from 'node:path';

/** A directory another user could write, or what it holds: arr refuses to use it. */
export class UnsafePathError extends Error {}

/**
 * The rule for the directories whose content arr acts on (the state directory: which process
 * groups to stop; the ACME directory: which certificate to serve, where keys go), after
 * OpenSSH's StrictModes: the directory and everything in it belong to arr's user (or root) and
 * no one else may write them, and every directory above it belongs to arr's user or root and
 * is writable by no one else either, unless it has the sticky bit (/tmp), so that no other user
 * can put the directory itself aside and another in its place.
 *
 * Makes `dir` (0700) when it is missing. Throws UnsafePathError, naming `option`, the path and
 * the fix. Where arr cannot make or read the directory, returns: arr can then read nothing
 * anyone put there, and the directory's user reports the failure when it meets it.
 */
export function claimPrivateDir(dir: string, option: string): void {
  const path = resolve(dir);
  try {
    mkdirSync(path, { recursive: true, mode: 0o700 });
    const check = new Checker(option, path);
    check.above(path);
    const real = realpathSync(path);
    if (real !== path) check.above(real);
    check.tree(real, 'top');
  } catch (err) {
    if (err instanceof UnsafePathError) throw err;
  }
}

const me = (): number => process.geteuid?.() ?? 0;

const trusted = (uid: number) => uid === me() || uid === 0;

/** Who besides the owner may write: "its group", "others", or both; undefined when no one. */
function otherWriters(st: Stats): string | undefined {
  const group = (st.mode & 0o020) !== 0;
  const others = (st.mode & 0o002) !== 0;
  if (group && others) return 'its group and others';
  return group ? 'its group' : others ? 'others' : undefined;
}

/** The entries of a directory; none when arr may not read it (then it reads nothing in it either). */
function namesIn(dir: string): string[] {
  try {
    return readdirSync(dir);
  } catch {
    return [];
  }
}

const modeOf = (st: Stats) => (st.mode & 0o7777).toString(8).padStart(4, '0');

class Checker {
  constructor(
    private readonly option: string,
    private readonly dir: string,
  ) {}

  private refuse(what: string, risk: string, fix: string): never {
    throw new UnsafePathError(`${this.option}: ${what}: ${risk}; ${fix}`);
  }

  /** The directories above `path` (and any symlink among them). */
  above(path: string): void {
    for (let p = dirname(path); ; p = dirname(p)) {
      const st = lstatSync(p);
      const where = `${p} (above ${this.dir})`;
      if (!trusted(st.uid))
        this.refuse(
          `${where} is owned by uid ${st.uid}`,
          `that user could put ${this.dir} aside and another in its place`,
          `choose a ${this.option} whose parents belong to root or to arr's user (uid ${me()})`,
        );
      const writers = st.isDirectory() && (st.mode & 0o1000) === 0 ? otherWriters(st) : undefined;
      if (writers)
        this.refuse(
          `${where} is writable by ${writers} (mode ${modeOf(st)}, no sticky bit)`,
          `another user could put ${this.dir} aside and another in its place`,
          `chmod go-w ${p}, or choose another ${this.option}`,
        );
      if (p === dirname(p)) return;
    }
  }

  /** `path` and everything below it, without following symlinks. */
  tree(path: string, depth: 'top' | 'below'): void {
    const st = lstatSync(path, { throwIfNoEntry: false });
    if (!st) return; // gone meanwhile
    const risk = `another user could have put there what arr acts on`;
    if (!trusted(st.uid))
      this.refuse(
        `${path} is owned by uid ${st.uid}, not by arr's user (uid ${me()})`,
        risk,
        depth === 'top'
          ? `chown ${me()} ${path} if it is arr's, or choose another ${this.option}`
          : `remove it, or chown ${me()} ${path} if it is arr's`,
      );
    if (st.isSymbolicLink()) return;
    const writers = otherWriters(st);
    if (writers)
      this.refuse(
        `${path} is writable by ${writers} (mode ${modeOf(st)})`,
        risk,
        depth === 'top' ? `chmod 700 ${path}` : `chmod go-w ${path}`,
      );
    if (st.isDirectory()) for (const name of namesIn(path)) this.tree(join(path, name), 'below');
  }
}
