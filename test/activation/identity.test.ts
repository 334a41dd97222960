import assert from 'node:assert/strict';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { cannotSwitchUser, IdentityError, resolveIdentity } from '../../src/activation/identity.js';

describe('resolveIdentity: an app\'s "user" and "group" as ids', () => {
  const dir = mkdtempSync(join(tmpdir(), 'arr-identity-'));
  const files = { passwd: join(dir, 'passwd'), group: join(dir, 'group') };
  writeFileSync(
    files.passwd,
    '# a comment\nroot:x:0:0:root:/root:/bin/sh\nweb:x:1001:1002:Web:/srv/web:/usr/sbin/nologin\n',
  );
  writeFileSync(files.group, 'root:x:0:\nweb:x:1002:\nshared:x:2000:web\n');
  after(() => rmSync(dir, { recursive: true, force: true }));

  const fails = async (user: string, group: string | undefined, field: string, message: RegExp) =>
    assert.rejects(
      resolveIdentity(user, group, files),
      (e: Error) => e instanceof IdentityError && e.field === field && message.test(e.message),
    );

  it('a name: its uid, primary group, home and name', async () => {
    assert.deepEqual(await resolveIdentity('web', undefined, files), {
      uid: 1001,
      gid: 1002,
      name: 'web',
      home: '/srv/web',
    });
  });

  it('a group by name or number replaces the primary group', async () => {
    assert.equal((await resolveIdentity('web', 'shared', files)).gid, 2000);
    assert.equal((await resolveIdentity('web', '77', files)).gid, 77);
  });

  it('a uid: its entry when it has one; else it needs a group', async () => {
    assert.deepEqual(await resolveIdentity('1001', undefined, files), {
      uid: 1001,
      gid: 1002,
      name: 'web',
      home: '/srv/web',
    });
    assert.deepEqual(await resolveIdentity('4242', 'shared', files), { uid: 4242, gid: 2000 });
    await fails('4242', undefined, 'user', /uid 4242 is not in .*passwd, so it has no primary group/);
  });

  it('unknown names are errors on their field', async () => {
    await fails('nosuch', undefined, 'user', /^unknown user "nosuch" \(not in .*passwd\)$/);
    await fails('web', 'nosuch', 'group', /^unknown group "nosuch" \(not in .*group\)$/);
  });

  it('an unreadable database is an error on the field that needed it', async () => {
    await assert.rejects(
      resolveIdentity('web', undefined, { passwd: join(dir, 'none'), group: files.group }),
      (e: Error) =>
        e instanceof IdentityError && e.field === 'user' && /cannot read .*none \(ENOENT\)/.test(e.message),
    );
  });

  it('only root can switch users', () => {
    assert.equal(cannotSwitchUser(true), undefined);
    assert.match(cannotSwitchUser(false) ?? '', /does not run as root/);
  });
});
