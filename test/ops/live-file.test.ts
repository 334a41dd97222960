import assert from 'node:assert/strict';
import { renameSync, writeFileSync } from 'node:fs';
import { after, describe, it } from 'node:test';
import { BSON, ObjectId } from 'mongodb';
import { allGone, gone, logLines } from '../support/activation.js';
import { type AppDoc, type ArrUnderTest, fetchVia, helloApp, pidOf, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { stopAll } from '../support/proc.js';

/** Edits of the apps file applied by a running arr (file registry). */

let count = 0;
/** A hello app with a unique name; its host is `<name>.localhost`. */
function app(): AppDoc & { host: string } {
  const name = `live${++count}x${process.pid}`;
  const host = `${name}.localhost`;
  return { ...helloApp(name, [{ host, ssl: 'allowed' }]), _id: new ObjectId(), name, host };
}

const line = ({ host: _host, ...doc }: AppDoc & { host?: string }) =>
  BSON.EJSON.stringify({ ...doc, machines: [] }, { relaxed: true });

/** Writes the apps file in place, as an editor that truncates and writes does. */
function write(arr: ArrUnderTest, text: string): void {
  writeFileSync(arr.appsFile!, text);
}
const writeApps = (arr: ArrUnderTest, apps: AppDoc[]) => write(arr, `${apps.map(line).join('\n')}\n`);

const status = async (arr: ArrUnderTest, host: string) => (await fetchVia(arr.port, host, false)).status;

/** Waits until a request for `host` gets `want` (the file change was applied). */
async function answers(arr: ArrUnderTest, host: string, want: number): Promise<void> {
  let last = 0;
  try {
    const check = async () => {
      last = await status(arr, host);
      return last === want;
    };
    await until(`${host} answered ${want}`, check, { timeoutMs: 6_000, intervalMs: 50 });
  } catch {
    assert.fail(`${host} answers ${last}, not ${want}\n--- arr output:\n${arr.proc.output()}`);
  }
}

describe('live changes of the apps file', () => {
  after(stopAll);

  it('an app added to the file is routed within a few seconds', async () => {
    const a = app();
    const b = app();
    const arr = await startArrWith([a]);
    try {
      assert.equal(await status(arr, a.host), 200);
      assert.equal(await status(arr, b.host), 404);
      writeApps(arr, [a, b]);
      await answers(arr, b.host, 200);
      assert.equal(await status(arr, a.host), 200);
      assert.ok(logLines(arr.proc.output()).some((l) => /^registry changed: 2 apps from /.test(l.msg)));
    } finally {
      await arr.stop();
    }
  });

  it('a changed host name: the old one 404, the new one 200, the same instance', async () => {
    const a = app();
    const arr = await startArrWith([a]);
    try {
      const before = pidOf(await fetchVia(arr.port, a.host, false));
      const renamed = `renamed-${a.host}`;
      writeApps(arr, [{ ...a, hosts: [{ host: renamed, ssl: 'allowed' }] }]);
      await answers(arr, renamed, 200);
      assert.equal(await status(arr, a.host), 404);
      assert.equal(pidOf(await fetchVia(arr.port, renamed, false)), before, 'the running instance serves on');
    } finally {
      await arr.stop();
    }
  });

  it('an app removed from the file: its instance stops and its host 404s; the others serve on', async () => {
    const a = app();
    const b = app();
    const arr = await startArrWith([a, b]);
    try {
      const pidA = pidOf(await fetchVia(arr.port, a.host, false));
      const pidB = pidOf(await fetchVia(arr.port, b.host, false));
      assert.ok(!gone(pidB));
      writeApps(arr, [a]);
      await answers(arr, b.host, 404);
      await allGone([pidB]);
      assert.equal(pidOf(await fetchVia(arr.port, a.host, false)), pidA);
      assert.ok(!gone(pidA), 'the instance of the app that stayed runs on');
      assert.match(arr.proc.output(), /stopping [^"]*: its app left the registry/);
    } finally {
      await arr.stop();
    }
  });

  it('a half-written file is not applied; the last good state serves until the file is whole', async () => {
    const a = app();
    const b = app();
    const c = app();
    const arr = await startArrWith([a, b]);
    try {
      const pidB = pidOf(await fetchVia(arr.port, b.host, false));
      // Cut in the middle of b's line, as a reader may see a file while it is written.
      const whole = `${line(a)}\n${line(b)}\n`;
      write(arr, whole.slice(0, whole.length - 40));
      await arr.proc.waitFor(
        /not applied: line 2: not valid extended JSON.*\(1 served app would be lost\)/,
        6_000,
      );
      assert.equal(await status(arr, b.host), 200);
      assert.equal(pidOf(await fetchVia(arr.port, b.host, false)), pidB, "b's instance was not stopped");
      assert.equal(await status(arr, a.host), 200);

      // An empty file (truncated, not yet written) is set aside too.
      write(arr, '');
      await arr.proc.waitFor(/not applied: it is empty/, 6_000);
      assert.equal(pidOf(await fetchVia(arr.port, b.host, false)), pidB);

      // Whole again, with an app more: applied.
      writeApps(arr, [a, b, c]);
      await answers(arr, c.host, 200);
      assert.equal(pidOf(await fetchVia(arr.port, b.host, false)), pidB);
      assert.ok(logLines(arr.proc.output()).some((l) => /^registry changed: 3 apps from /.test(l.msg)));
    } finally {
      await arr.stop();
    }
  });

  it('a document that breaks a rule is skipped as at start, and the others are applied', async () => {
    const a = app();
    const b = app();
    const arr = await startArrWith([a]);
    try {
      const bad = { ...b, _id: 'bad-ssl-doc', hosts: [{ host: b.host, ssl: 'maybe' }] };
      const renamed = `new-${a.host}`;
      writeApps(arr, [{ ...a, hosts: [{ host: renamed, ssl: 'allowed' }] }, bad]);
      await answers(arr, renamed, 200);
      assert.equal(await status(arr, b.host), 404);
      await arr.proc.waitFor(/app bad-ssl-doc: hosts\[0\]\.ssl: must be/);
      // A line that is not JSON but costs no served app (a new one being typed) is reported, and
      // the rest of the file applies.
      const c = app();
      write(arr, `${line({ ...a, hosts: [{ host: renamed, ssl: 'allowed' }] })}\n${line(c)}\n{"_id": "half`);
      await answers(arr, c.host, 200);
      await arr.proc.waitFor(/registry: line 3: not valid extended JSON/);
    } finally {
      await arr.stop();
    }
  });

  it('a file replaced by a rename (editors, config tools) and `[]` (no apps) are applied', async () => {
    const a = app();
    const b = app();
    const arr = await startArrWith([a]);
    try {
      const pidA = pidOf(await fetchVia(arr.port, a.host, false));
      const tmp = `${arr.appsFile}.tmp`;
      writeFileSync(tmp, `${line(a)}\n${line(b)}\n`);
      renameSync(tmp, arr.appsFile!);
      await answers(arr, b.host, 200);
      write(arr, '[]\n');
      await answers(arr, a.host, 404);
      assert.equal(await status(arr, b.host), 404);
      await allGone([pidA]);
    } finally {
      await arr.stop();
    }
  });
});
