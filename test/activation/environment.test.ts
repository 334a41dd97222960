// What an instance gets from arr and gives back: its environment (arr's own, less everything
// that configures arr, plus PORT), and its output, logged line by line as `NAME[pid]: line`.
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { logLines, scriptApp, startLines } from '../support/activation.js';
import { type AppDoc, type ArrUnderTest, fetchVia, provideApps, startArrWith } from '../support/arr.js';
import { type MongoServer, mongoUnavailable, startMongo } from '../support/mongo.js';
import { stopAll } from '../support/proc.js';

const ENV_APP = `
require('node:http')
  .createServer((req, res) => res.end(JSON.stringify({ pid: process.pid, env: process.env })))
  .listen(Number(process.env.PORT));
`;

/** Two lines on stdout in one write and one in another, one on stderr; /bye prints a last line without a newline and exits. */
const CHATTY_APP = `
process.stdout.write('first line\\nsecond line\\n');
console.log('third line');
console.error('a warning on stderr');
require('node:http')
  .createServer((req, res) => {
    if (req.url === '/bye') {
      res.end('bye');
      process.stdout.write('last words', () => process.exit(0));
      return;
    }
    res.end(String(process.pid));
  })
  .listen(Number(process.env.PORT));
`;

const SECRET = 's3cr3t-do-not-leak';
const MONGO_SECRET = 'm0ng0-pa55-do-not-leak';

describe('the instance environment and output', () => {
  let arr: ArrUnderTest;
  let mongo: MongoServer | undefined;
  const apps: AppDoc[] = [
    scriptApp('envy', 'envy.localhost', ENV_APP),
    scriptApp('chatty', 'chatty.localhost', CHATTY_APP),
  ];

  before(async () => {
    const env: NodeJS.ProcessEnv = {
      // An ARR_ variable that names no option: arr ignores it, and must not pass it on.
      ARR_EXTRA_URL: `mongodb://someone:${SECRET}@db.example/arr`,
      // An option given by the environment.
      ARR_START_TIMEOUT: '20',
      // Anything else is the instance's too.
      KEEP_ME: 'yes',
    };
    if (!mongoUnavailable()) {
      // The registry named only by ARR_MONGO, with credentials in it (FerretDB takes any, by PLAIN).
      mongo = await startMongo('activation_env');
      await provideApps(apps, mongo.url);
      const u = new URL(mongo.url);
      u.username = 'arruser';
      u.password = MONGO_SECRET;
      u.search = '?authMechanism=PLAIN&authSource=%24external';
      env.ARR_MONGO = u.toString();
    }
    // Without ARR_MONGO these apps are served from the file; with it, the file (passed by -a) is ignored.
    arr = await startArrWith(mongo ? [] : apps, { env });
    if (mongo) assert.match(arr.proc.output(), /registry: 2 apps from MongoDB/);
  });
  after(async () => {
    await arr?.stop();
    await stopAll();
    await mongo?.stop();
  });

  it('gets PORT and arr environment, without any ARR_ variable (but its token) or secret', async () => {
    const r = await fetchVia(arr.port, 'envy.localhost', false);
    assert.equal(r.status, 200, r.text);
    const { pid, env } = JSON.parse(r.text) as { pid: number; env: Record<string, string> };
    const start = startLines(arr.proc.output(), 'envy');
    assert.equal(start.length, 1);
    assert.equal(start[0]!.pid, pid);
    assert.equal(env.PORT, String(start[0]!.port), 'PORT is the port arr gave it');
    assert.equal(env.KEEP_ME, 'yes');
    assert.deepEqual(
      Object.keys(env).filter((k) => /^arr_/i.test(k)),
      ['ARR_INSTANCE'],
      'no variable that configures arr: only the random token of this instance',
    );
    assert.match(env.ARR_INSTANCE!, /^[0-9a-f]{32}$/);
    assert.ok(!arr.proc.output().includes(env.ARR_INSTANCE!), 'the token is never logged');
    for (const [k, v] of Object.entries(env)) {
      assert.ok(!v.includes(SECRET) && !v.includes(MONGO_SECRET), `${k} carries a secret`);
    }
    // Nor does arr's own log show them.
    assert.ok(!arr.proc.output().includes(SECRET) && !arr.proc.output().includes(MONGO_SECRET));
  });

  it('has its output logged line by line as NAME[pid]: line', async () => {
    const r = await fetchVia(arr.port, 'chatty.localhost', false);
    assert.equal(r.status, 200, r.text);
    const pid = Number(r.text);
    const expected = [
      { msg: `chatty[${pid}]: first line`, level: 'info' },
      { msg: `chatty[${pid}]: second line`, level: 'info' },
      { msg: `chatty[${pid}]: third line`, level: 'info' },
      // stderr too, by default (--app-stderr-level)
      { msg: `chatty[${pid}]: a warning on stderr`, level: 'info' },
    ];
    await arr.proc.waitFor(`chatty[${pid}]: a warning on stderr`, 5_000);
    await arr.proc.waitFor(`chatty[${pid}]: third line`, 5_000);
    const lines = logLines(arr.proc.output())
      .filter((l) => l.msg.startsWith(`chatty[${pid}]: `))
      .map((l) => ({ msg: l.msg, level: l.level }));
    assert.deepEqual(
      lines.sort((a, b) => a.msg.localeCompare(b.msg)),
      expected.sort((a, b) => a.msg.localeCompare(b.msg)),
    );
    for (const l of logLines(arr.proc.output()).filter((x) => x.msg.startsWith('chatty['))) {
      assert.equal(l.pid, pid, 'the pid field too');
      assert.equal(l.app, 'chatty');
    }

    // A last line without a newline, written just before the program exits, is logged too.
    const bye = await fetchVia(arr.port, 'chatty.localhost', false, { path: '/bye' });
    assert.equal(bye.status, 200);
    await arr.proc.waitFor(`chatty[${pid}]: last words`, 5_000);
    await arr.proc.waitFor(`chatty[${pid}] exited with code 0`, 5_000);
  });
});
