import { readFile } from 'node:fs/promises';

/** The user and group an instance runs as, from the app's `user` and `group`. */
export interface Identity {
  uid: number;
  gid: number;
  /** From the user's /etc/passwd entry, when it has one: the instance's HOME, USER and LOGNAME. */
  name?: string;
  home?: string;
}

/** `user` or `group` of an app cannot be turned into ids; `field` is the one at fault. */
export class IdentityError extends Error {
  constructor(
    readonly field: 'user' | 'group',
    message: string,
  ) {
    super(message);
  }
}

interface PasswdEntry {
  name: string;
  uid: number;
  gid: number;
  home: string;
}

export const PASSWD_FILE = '/etc/passwd';
export const GROUP_FILE = '/etc/group';

const NUMERIC_ID = /^\d+$/;

/** The lines of a colon-separated database such as /etc/passwd, split into fields. */
async function readDatabase(file: string, field: IdentityError['field']): Promise<string[][]> {
  const text = await readFile(file, 'utf8').catch((err: NodeJS.ErrnoException) => {
    throw new IdentityError(field, `cannot read ${file} (${err.code ?? err.message})`);
  });
  return text
    .split('\n')
    .filter((line) => line !== '' && !line.startsWith('#'))
    .map((line) => line.split(':'));
}

async function findUser(user: string, file: string): Promise<PasswdEntry | undefined> {
  const numeric = NUMERIC_ID.test(user);
  for (const f of await readDatabase(file, 'user')) {
    if (f.length < 7) continue;
    if (numeric ? f[2] === String(Number(user)) : f[0] === user)
      return { name: f[0]!, uid: Number(f[2]), gid: Number(f[3]), home: f[5]! };
  }
  return undefined;
}

async function findGroup(group: string, file: string): Promise<number | undefined> {
  if (NUMERIC_ID.test(group)) return Number(group);
  for (const f of await readDatabase(file, 'group')) if (f.length >= 3 && f[0] === group) return Number(f[2]);
  return undefined;
}

/**
 * The ids for an app's `user` (a name or a uid) and `group` (a name or a gid; default: the
 * user's primary group). Names are looked up in /etc/passwd and /etc/group only: users of
 * NSS sources such as LDAP are given by number, with their group.
 */
export async function resolveIdentity(
  user: string,
  group: string | undefined,
  files = { passwd: PASSWD_FILE, group: GROUP_FILE },
): Promise<Identity> {
  const entry = await findUser(user, files.passwd);
  if (!entry && !NUMERIC_ID.test(user))
    throw new IdentityError('user', `unknown user "${user}" (not in ${files.passwd})`);
  let gid = entry?.gid;
  if (group !== undefined) {
    gid = await findGroup(group, files.group);
    if (gid === undefined)
      throw new IdentityError('group', `unknown group "${group}" (not in ${files.group})`);
  }
  if (gid === undefined) {
    throw new IdentityError(
      'user',
      `uid ${user} is not in ${files.passwd}, so it has no primary group: give "group" too`,
    );
  }
  const identity: Identity = { uid: entry?.uid ?? Number(user), gid };
  if (entry) {
    identity.name = entry.name;
    identity.home = entry.home;
  }
  return identity;
}

/** Why this arr cannot start an app as another user, or undefined when it can. */
export function cannotSwitchUser(isRoot = process.getuid?.() === 0): string | undefined {
  return isRoot ? undefined : 'arr does not run as root, so it cannot start instances as another user';
}
