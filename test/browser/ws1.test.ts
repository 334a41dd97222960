import assert from 'node:assert/strict';
import { existsSync, mkdirSync, readFileSync, rmSync, statSync } from 'node:fs';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { type Browser, chromium } from 'playwright-core';
import { type AppDoc, type ArrUnderTest, startArrWith } from '../support/arr.js';
import { until } from '../support/poll.js';
import { repoRoot, stopAll } from '../support/proc.js';
import { CRASH } from '../support/wsclient.js';

// A real browser through arr: Debian's Chromium, driven by playwright-core, opens the ws1 sample
// over http and https and watches the canto stream in over ws and wss.
// scripts/install-chromium.sh installs it (.ci/run calls it); ARR_CHROMIUM names another binary.
const CHROMIUM = process.env.ARR_CHROMIUM ?? '/usr/bin/chromium';
const missing = !existsSync(CHROMIUM);
const inCI = process.env.CI === 'true';
const skip =
  missing && !inCI ? `${CHROMIUM} is missing (bash scripts/install-chromium.sh installs it)` : false;
if (skip) {
  console.warn(`\n!!! test/browser SKIPPED: ${skip}.\n!!! The browser end-to-end tests did not run.\n`);
}

const ARTIFACTS = join(repoRoot, 'test-artifacts');
const FIRST_LINE = 'Midway upon the journey of our life';

const ws1App = (): AppDoc => ({
  _id: new ObjectId(),
  process: { executable: process.execPath, args: [join(repoRoot, 'samples/ws1/server.js')] },
  hosts: [
    {
      host: 'ws1.localhost',
      ssl: 'allowed',
      cert: join(repoRoot, 'certs/ws1-cert.pem'),
      key: join(repoRoot, 'certs/ws1-key.pem'),
    },
  ],
  instances: 1,
});

describe('a real browser reads the ws1 sample through arr', { skip }, () => {
  let arr: ArrUnderTest;
  let browser: Browser;

  before(async () => {
    if (missing) {
      throw new Error(
        `${CHROMIUM} is missing under CI=true: .ci/run must run scripts/install-chromium.sh before npm test`,
      );
    }
    mkdirSync(ARTIFACTS, { recursive: true });
    // A stanza every 300 ms instead of every 2 s (the instance gets arr's environment).
    arr = await startArrWith([ws1App()], {
      env: { WS1_INTERVAL_MS: '300' },
      // Which protocol the page and its WebSocket came over (HTTP/2 over HTTPS: RFC 8441).
      extraArgs: ['--access-log'],
    });
    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: [
        // Chromium refuses to run sandboxed as root.
        ...(process.getuid?.() === 0 ? ['--no-sandbox'] : []),
        '--disable-dev-shm-usage',
        // No --host-resolver-rules: Chromium resolves *.localhost to loopback by itself, as a
        // person's browser does (it falls back from ::1 to 127.0.0.1, where arr listens).
      ],
      timeout: 30_000,
    });
  });

  after(async () => {
    await browser?.close();
    await arr?.stop();
    await stopAll();
  });

  for (const secure of [false, true]) {
    const scheme = secure ? 'https' : 'http';
    it(`over ${scheme}: the page loads and at least two stanzas arrive; a screenshot is saved`, async () => {
      const port = secure ? arr.sslport : arr.port;
      const url = `${scheme}://ws1.localhost:${port}/`;
      // The sample's certificate is self-signed: accepted here, as a person would click through.
      const context = await browser.newContext({
        ignoreHTTPSErrors: secure,
        viewport: { width: 900, height: 700 },
      });
      const page = await context.newPage();
      try {
        const response = await page.goto(url, { waitUntil: 'load', timeout: 20_000 });
        assert.equal(response?.status(), 200, `GET ${url}`);
        assert.equal(await page.title(), 'Dante — Inferno, Canto I');
        // HTTPS is HTTP/2 (ALPN h2); plain HTTP stays HTTP/1.1.
        const protocol = await page.evaluate(
          () => (performance.getEntries()[0] as unknown as { nextHopProtocol: string }).nextHopProtocol,
        );
        assert.equal(protocol, secure ? 'h2' : 'http/1.1');

        // The second stanza arrives 300 ms after the first.
        await page.locator('p.stanza').nth(1).waitFor({ state: 'attached', timeout: 15_000 });
        const stanzas = await page.locator('p.stanza').allTextContents();
        assert.ok(stanzas.length >= 2, `stanzas: ${stanzas.length}`);
        assert.ok(stanzas[0]!.startsWith(FIRST_LINE), `the first stanza opens the canto: ${stanzas[0]}`);
        assert.notEqual(stanzas[1], stanzas[0], 'the second stanza is the next one');
        const status = await page.locator('#status').textContent();
        assert.equal(
          status,
          `connected to ${secure ? 'wss' : 'ws'}://ws1.localhost:${port}/stream`,
          'the page reports its WebSocket open',
        );

        const file = join(ARTIFACTS, `ws1-${scheme}.png`);
        rmSync(file, { force: true }); // not last run's
        await page.screenshot({ path: file, fullPage: true, animations: 'disabled' });
        assert.ok(existsSync(file), `${file} written`);
        const png = readFileSync(file);
        assert.deepEqual([...png.subarray(0, 8)], [0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a], 'a PNG');
        // A blank 900x700 page compresses to a few KB; text makes it much larger.
        assert.ok(statSync(file).size > 20_000, `${file} is not trivial (${statSync(file).size} bytes)`);
      } catch (err) {
        // What the page looked like when it went wrong, for whoever reads the failure.
        await page
          .screenshot({ path: join(ARTIFACTS, `ws1-${scheme}-failed.png`), fullPage: true })
          .catch(() => {});
        throw err;
      } finally {
        await context.close();
      }
      // Chromium opens its WebSocket on the HTTP/2 connection (extended CONNECT) when arr offers
      // it: its access line (written when it closes) says so.
      if (secure)
        await until('the access line of the WebSocket over h2', () =>
          /"protocol":"h2","websocket":true/.test(arr.proc.output()),
        );
      assert.doesNotMatch(arr.proc.output(), CRASH, 'no escaped error in arr output');
    });
  }
});
