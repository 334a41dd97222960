import assert from 'node:assert/strict';
import { existsSync, mkdirSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { type Browser, chromium, type Page } from 'playwright-core';
import { scriptApp } from '../support/activation.js';
import { type AppDoc, type ArrUnderTest, fetchVia, HELLO, helloApp, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { freePort } from '../support/ports.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { CRASH } from '../support/wsclient.js';

// The dashboard in a real browser (Debian's Chromium through playwright-core, as ws1.test.ts):
// apps and instances appear, the request rate moves under load, a hostile app name stays text,
// output lines show, 10,000 apps are paged, and the token is asked once. Screenshots go to
// test-artifacts/ (docs/dashboard.png is one of them, copied by hand).
const CHROMIUM = process.env.ARR_CHROMIUM ?? '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);
const inCI = process.env.CI === 'true';
const skip =
  missing && !inCI ? `${CHROMIUM} is missing (bash scripts/install-chromium.sh installs it)` : false;
if (skip) {
  console.warn(`\n!!! test/browser/dashboard SKIPPED: ${skip}.\n`);
}

const ARTIFACTS = join(repoRoot, 'test-artifacts');
/** Were it ever parsed as HTML, it would call alert() and set a global. */
const HOSTILE = '<img src=x onerror="alert(1);globalThis.pwned=1">';
/** The same in an output line. */
const HOSTILE_LINE = '<script>alert(2)</script><img src=x onerror="alert(3);globalThis.pwned=3">';
const TOKEN = 'browser-token-0123456789abcdef';

const sample = (name: string, hosts: AppDoc['hosts'], instances = 1): AppDoc => ({
  ...helloApp(name, hosts, instances),
  name,
});

/** The repository's sample apps (apps.json), a hostile name, and an app that cannot start. */
function samples(): AppDoc[] {
  return [
    sample('app1', [
      { host: 'app1.localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/app1-key.pem' },
      {
        host: 'secure-app1.localhost',
        ssl: 'required',
        cert: 'certs/secure-app1-cert.pem',
        key: 'certs/secure-app1-key.pem',
      },
    ]),
    sample(
      'app2',
      [
        { host: 'app2.localhost', ssl: 'allowed' },
        { host: 'plain-app2.localhost', ssl: 'none' },
      ],
      2,
    ),
    {
      _id: new ObjectId(),
      name: 'ws1',
      process: { executable: process.execPath, args: [join(repoRoot, 'samples/ws1/server.js')] },
      hosts: [
        { host: 'ws1.localhost', ssl: 'allowed', cert: 'certs/ws1-cert.pem', key: 'certs/ws1-key.pem' },
      ],
      instances: 1,
    },
    { ...sample('hostile', [{ host: 'hostile.localhost', ssl: 'allowed' }]), name: HOSTILE },
    scriptApp(
      'crashy',
      'crashy.localhost',
      `console.log('crashy: starting'); console.log(${JSON.stringify(HOSTILE_LINE)}); console.error('crashy: cannot read /etc/crashy.conf'); process.exit(3)`,
    ),
  ];
}

async function launch(): Promise<Browser> {
  if (missing) {
    throw new Error(
      `${CHROMIUM} is missing under CI=true: .ci/run must run scripts/install-chromium.sh before npm test`,
    );
  }
  mkdirSync(ARTIFACTS, { recursive: true });
  return chromium.launch({
    executablePath: CHROMIUM,
    headless: true,
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
    timeout: 30_000,
  });
}

async function screenshot(page: Page, name: string): Promise<string> {
  const file = join(ARTIFACTS, name);
  rmSync(file, { force: true });
  await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
  assert.ok(statSync(file).size > 20_000, `${file} is not trivial`);
  return file;
}

/** The cells of an app's row, by the app's name, as text. */
async function rowOf(page: Page, name: string): Promise<string[]> {
  const exact = new RegExp(`^${name.replace(/[.*+?^${}()|[\]\\]/g, '\\$&')}$`);
  const row = page.locator('#apps tr').filter({ has: page.locator('.app-name', { hasText: exact }) });
  if ((await row.count()) !== 1) return [];
  return row.locator('td').allTextContents();
}

describe('the dashboard in a browser', { skip }, () => {
  let arr: ArrUnderTest;
  let admin: number;
  let browser: Browser;
  let page: Page;
  const dialogs: string[] = [];
  const pageErrors: string[] = [];
  const blocked: string[] = [];

  before(async () => {
    admin = await freePort();
    arr = await startArrWith(samples(), { extraArgs: ['--admin', `127.0.0.1:${admin}`] });
    browser = await launch();
    const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
    page = await context.newPage();
    page.on('dialog', (d) => {
      dialogs.push(d.message());
      void d.dismiss();
    });
    page.on('pageerror', (e) => pageErrors.push(e.message));
    // Anything the page tries to load besides arr's own files (an <img src=x> would).
    page.on('request', (r) => {
      if (!r.url().startsWith(`http://127.0.0.1:${admin}/`)) blocked.push(r.url());
    });
    page.on('requestfailed', (r) => {
      if (!r.url().endsWith('/api/events')) blocked.push(`failed: ${r.url()}`);
    });
  });
  after(async () => {
    await browser?.close();
    await arr?.stop();
    await stopAll();
  });

  it('shows every app with its hosts, and the instances once they run', async () => {
    // app1 and app2 run before the page opens; crashy fails (its 5xx and output show).
    assert.equal((await fetchVia(arr.port, 'app1.localhost', false)).status, 200);
    assert.equal((await fetchVia(arr.port, 'app2.localhost', false)).status, 200);
    assert.ok((await fetchVia(arr.port, 'crashy.localhost', false)).status >= 500);
    const response = await page.goto(`http://127.0.0.1:${admin}/`, { waitUntil: 'load' });
    assert.equal(response?.status(), 200);
    assert.equal(await page.title(), 'arr dashboard');
    await page.locator('#apps tr').nth(4).waitFor({ timeout: 15_000 });
    const names = await page.locator('#apps .app-name').allTextContents();
    assert.deepEqual(names, [HOSTILE, 'app1', 'app2', 'crashy', 'ws1']);
    const app1 = await rowOf(page, 'app1');
    assert.match(app1[1]!, /app1\.localhost\s*allowed\s*own cert/);
    assert.match(app1[1]!, /secure-app1\.localhost\s*required\s*own cert/);
    assert.match(app1[3]!, /127\.0\.0\.1:\d+ pid \d+ ready/);
    assert.match((await rowOf(page, 'app2'))[1]!, /plain-app2\.localhost\s*none\s*default cert/);
    assert.equal((await rowOf(page, 'app2'))[2], '2', 'its cap');
    assert.match((await rowOf(page, 'ws1'))[3]!, /not running/);
    await page.locator('#live.ok').waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#registry').textContent(), 'apps file ok');
  });

  it('the request rate moves when a load is sent', async () => {
    const cell = async () => Number((await rowOf(page, 'app1'))[4]);
    // The requests of the first test are over: the rate is back to 0 before the load.
    await until('app1 requests/s to be 0', async () => (await cell()) === 0);
    // Two clients in a loop, each request on a new connection, until the page has shown a few
    // seconds of it (then the screenshot has charts to show).
    let sending = true;
    const client = async () => {
      while (sending) await fetchVia(arr.port, 'app1.localhost', false);
    };
    const clients = [client(), client()];
    try {
      await until('app1 requests/s above 0 on the page', async () => (await cell()) > 0, {
        timeoutMs: 20_000,
      });
      await until(
        'the summary to move and the node chart to have a few seconds of it',
        async () =>
          Number(await page.locator('#s-requests').textContent()) > 0 &&
          // The page's own state module: the same instance as the page's (modules are one per URL).
          Number(
            await page.evaluate(
              "import('/dashboard/state.js').then((m) => m.state.nodeHistory.filter((v) => v > 0).length)",
            ),
          ) >= 6,
        { timeoutMs: 30_000 },
      );
      await screenshot(page, 'dashboard.png');
    } finally {
      sending = false;
      await Promise.all(clients);
    }
  });

  it('a hostile app name is shown as text and runs nothing', async () => {
    const name = page.locator('#apps .app-name').first();
    assert.equal(await name.textContent(), HOSTILE);
    assert.equal(await page.locator('img').count(), 0, 'no <img> element was made');
    assert.equal(await page.evaluate(() => (globalThis as { pwned?: unknown }).pwned), undefined);
    await name.click();
    await page.locator('#d-title').filter({ hasText: HOSTILE }).waitFor();
    assert.equal(await page.locator('img').count(), 0);
    assert.deepEqual(dialogs, [], 'no alert()');
    assert.deepEqual(blocked, [], 'nothing loaded from elsewhere');
    assert.deepEqual(pageErrors, []);
  });

  it("an app's details: charts and the last lines of its output, stderr marked", async () => {
    await page.locator('#apps .app-name', { hasText: /^crashy$/ }).click();
    await page.locator('#d-title', { hasText: /^crashy$/ }).waitFor();
    const err = page.locator('#d-output li.stderr', { hasText: 'crashy: cannot read /etc/crashy.conf' });
    await err.first().waitFor({ timeout: 10_000 });
    assert.ok((await page.locator('#d-output li.stdout', { hasText: 'crashy: starting' }).count()) >= 1);
    // Markup in an output line is text too.
    assert.ok((await page.locator('#d-output li', { hasText: HOSTILE_LINE }).count()) >= 1);
    assert.equal(await page.locator('img, #d-output script').count(), 0);
    assert.equal(await page.evaluate('globalThis.pwned'), undefined);
    assert.deepEqual(dialogs, []);
    assert.match((await rowOf(page, 'crashy'))[3]!, /backing off|not running/);
    await page.locator('#apps .app-name', { hasText: /^app1$/ }).click();
    await page.locator('#d-output li', { hasText: /app1 listening on \d+/ }).waitFor({ timeout: 10_000 });
    await page.locator('#detail').scrollIntoViewIfNeeded();
    await screenshot(page, 'dashboard-detail.png');
    assert.deepEqual(pageErrors, []);
    assert.doesNotMatch(arr.proc.output(), CRASH);
  });
});

describe('the dashboard with 10,000 apps', { skip }, () => {
  let arr: ArrUnderTest;
  let admin: number;
  let browser: Browser;

  before(async () => {
    admin = await freePort();
    const apps: AppDoc[] = [];
    for (let i = 0; i < 10_000; i++) {
      const n = String(i).padStart(5, '0');
      apps.push({
        _id: new ObjectId(),
        name: `app-${n}`,
        process: { executable: process.execPath, args: [HELLO, `app-${n}`] },
        hosts: [{ host: `app-${n}.localhost`, ssl: 'allowed' }],
        instances: 1,
      });
    }
    arr = await startArrWith(apps, { extraArgs: ['--admin', `127.0.0.1:${admin}`] });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await arr?.stop();
    await stopAll();
  });

  it('renders a page of them, pages and filters through them, and stays responsive', async () => {
    const page = await browser.newPage({ viewport: { width: 1400, height: 900 } });
    const errors: string[] = [];
    page.on('pageerror', (e) => errors.push(e.message));
    const t0 = performance.now();
    await page.goto(`http://127.0.0.1:${admin}/`, { waitUntil: 'load' });
    await page.locator('#range', { hasText: '1–50 of 10,000' }).waitFor({ timeout: 20_000 });
    console.log(`# 10,000 apps: first page shown ${Math.round(performance.now() - t0)} ms after navigation`);
    assert.equal(await page.locator('#apps tr').count(), 50, 'one page in the DOM, not 10,000 rows');
    assert.equal(await page.locator('#s-apps').textContent(), '10,000');
    await page.locator('#next').click();
    await page.locator('#range', { hasText: '51–100 of 10,000' }).waitFor();
    assert.equal(await page.locator('#apps .app-name').first().textContent(), 'app-00050');
    await page.locator('#filter').fill('app-09999');
    await page.locator('#range', { hasText: '1–1 of 1' }).waitFor();
    assert.deepEqual(await page.locator('#apps .app-name').allTextContents(), ['app-09999']);
    // Responsive: the page still answers while ticks keep coming (no long task holds it).
    for (let i = 0; i < 3; i++) assert.equal(await page.evaluate('document.readyState'), 'complete');
    await page.locator('#filter').fill('');
    await page.locator('#range', { hasText: '1–50 of 10,000' }).waitFor();
    await screenshot(page, 'dashboard-10000.png');
    assert.deepEqual(errors, []);
    await page.close();
  });
});

describe('the dashboard with --admin-token', { skip }, () => {
  let arr: ArrUnderTest;
  let admin: number;
  let browser: Browser;

  before(async () => {
    admin = await freePort();
    arr = await startArrWith(samples().slice(0, 2), {
      extraArgs: ['--admin', `127.0.0.1:${admin}`],
      env: { ARR_ADMIN_TOKEN: TOKEN },
    });
    browser = await launch();
  });
  after(async () => {
    await browser?.close();
    await arr?.stop();
    await stopAll();
  });

  it('asks for the token once, keeps it in the tab, and asks again when it is refused', async () => {
    const context = await browser.newContext({ viewport: { width: 1200, height: 700 } });
    const page = await context.newPage();
    await page.goto(`http://127.0.0.1:${admin}/`, { waitUntil: 'load' });
    await page.locator('#login-form').waitFor();
    assert.equal(await page.locator('#main').isVisible(), false, 'nothing shown without the token');
    await screenshot(page, 'dashboard-token.png');
    await page.locator('#login-token').fill('a-wrong-token-of-some-length');
    await page.locator('#login-form button').click();
    await page.locator('#login-error').waitFor();
    await page.locator('#login-token').fill(TOKEN);
    await page.locator('#login-form button').click();
    await page.locator('#apps .app-name', { hasText: /^app1$/ }).waitFor({ timeout: 10_000 });
    await page.locator('#live.ok').waitFor({ timeout: 10_000 });
    assert.equal(await page.evaluate("sessionStorage.getItem('arr-admin-token')"), TOKEN);
    // A reload of the tab: not asked again.
    await page.reload({ waitUntil: 'load' });
    await page.locator('#apps .app-name', { hasText: /^app2$/ }).waitFor({ timeout: 10_000 });
    assert.equal(await page.locator('#login').isVisible(), false);
    await context.close();
    assert.doesNotMatch(arr.proc.output(), new RegExp(TOKEN));
  });
});
