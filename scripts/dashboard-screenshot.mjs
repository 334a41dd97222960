#!/usr/bin/env node
// Makes docs/dashboard.png: a farm of two arr nodes on loopback (127.0.0.1 and 127.0.0.2) over
// FerretDB, the sample apps plus a few more, some load and an open WebSocket, and the dashboard
// of the first node in Debian's Chromium. Run after `npm run build`, with FerretDB and Chromium
// installed (scripts/install-ferretdb.sh, scripts/install-chromium.sh):
//
//   node scripts/dashboard-screenshot.mjs [out.png]
import { join } from 'node:path';
import { ObjectId } from 'mongodb';
import { chromium } from 'playwright-core';
import WebSocket from 'ws';

const root = new URL('..', import.meta.url).pathname;
const support = (name) => import(join(root, 'dist/test/support', name));
const { fetchVia, helloApp, startArrWith } = await support('arr.js');
const { startMongo } = await support('mongo.js');
const { freePort } = await support('ports.js');
const { stopAll } = await support('proc.js');
const { scriptApp } = await support('activation.js');

const out = process.argv[2] ?? join(root, 'docs/dashboard.png');
const named = (name, hosts, instances = 1) => ({ ...helloApp(name, hosts, instances), name });
const apps = [
  named('app1', [
    { host: 'app1.localhost', ssl: 'allowed', cert: 'certs/app1-cert.pem', key: 'certs/app1-key.pem' },
    {
      host: 'secure-app1.localhost',
      ssl: 'required',
      cert: 'certs/secure-app1-cert.pem',
      key: 'certs/secure-app1-key.pem',
    },
  ]),
  named(
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
    process: { executable: process.execPath, args: [join(root, 'samples/ws1/server.js')] },
    hosts: [{ host: 'ws1.localhost', ssl: 'allowed', cert: 'certs/ws1-cert.pem', key: 'certs/ws1-key.pem' }],
    instances: 1,
  },
  named('blog', [{ host: 'blog.localhost', ssl: 'required' }]),
  named('shop', [{ host: 'shop.localhost', ssl: 'allowed' }], 2),
  scriptApp(
    'billing',
    'billing.localhost',
    "console.log('billing 2.3.1 starting'); console.error('Error: DATABASE_URL is not set'); process.exit(1)",
  ),
];

const mongo = await startMongo('screenshot');
let browser;
try {
  const admin = await freePort();
  const a = await startArrWith(apps, {
    mongo: mongo.url,
    extraArgs: ['--admin', `127.0.0.1:${admin}`, '--poll', '1', '--heartbeat', '1'],
  });
  const b = await startArrWith([], {
    mongo: mongo.url,
    keepApps: true,
    address: '127.0.0.2',
    extraArgs: ['--poll', '1', '--heartbeat', '1'],
  });
  // app2 and shop start on the second node too: their caps are 2.
  for (const host of ['app2.localhost', 'shop.localhost'])
    await fetchVia(b.port, host, false, {}, '127.0.0.2');
  for (const host of ['app1.localhost', 'app2.localhost', 'shop.localhost', 'blog.localhost'])
    await fetchVia(a.port, host, false);
  for (let i = 0; i < 3; i++) await fetchVia(a.port, 'billing.localhost', false);
  const ws = new WebSocket(`ws://127.0.0.1:${a.port}/stream`, { headers: { host: 'ws1.localhost' } });
  ws.on('error', () => {});

  // Load that varies: app1 busy, shop steady, app2 light, some 5xx from billing.
  let sending = true;
  const loop = async (host, pauseMs) => {
    while (sending) {
      await fetchVia(a.port, host, false).catch(() => {});
      if (pauseMs) await new Promise((r) => setTimeout(r, pauseMs * (0.5 + Math.random())));
    }
  };
  const clients = [loop('app1.localhost', 0), loop('app1.localhost', 5), loop('shop.localhost', 20)];
  clients.push(loop('app2.localhost', 120), loop('billing.localhost', 700));

  browser = await chromium.launch({
    executablePath: process.env.ARR_CHROMIUM ?? '/usr/bin/chromium',
    headless: true,
    args: [...(process.getuid?.() === 0 ? ['--no-sandbox'] : []), '--disable-dev-shm-usage'],
  });
  const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
  await page.goto(`http://127.0.0.1:${admin}/`, { waitUntil: 'load' });
  await page.locator('#nodes tr').nth(1).waitFor({ timeout: 20_000 });
  // 45 seconds of traffic on the charts.
  await new Promise((r) => setTimeout(r, 45_000));
  await page.locator('#apps .app-name', { hasText: /^billing$/ }).click();
  await page.locator('#d-output li').first().waitFor();
  await new Promise((r) => setTimeout(r, 2500));
  await page.screenshot({ path: out, fullPage: true });
  console.log(`wrote ${out}`);
  sending = false;
  ws.close();
  await Promise.all(clients);
} finally {
  await browser?.close();
  await stopAll();
  await mongo.stop();
}
