import { join } from 'node:path';
import { setTimeout as sleep } from 'node:timers/promises';
import type { ArrUnderTest } from '../../harness/arr.js';
import { flags, runClient } from '../lib/clients.js';
import {
  addSection,
  alternate,
  CERT,
  type Ctx,
  KEY,
  med,
  ratioOf,
  startArr,
  writeApps,
} from '../lib/context.js';
import { cpuOf, rssOf } from '../lib/cpu.js';
import { activate } from '../lib/net.js';
import { warmUp, wrkPoint } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import type { WrkResult } from '../lib/wrk.js';
import { CONNECTIONS, noteErrors, signed } from './http.js';

export const MANY = 10_000;

interface Lookup {
  apps: number;
  loadMs: number;
  nsPerLookup: number;
}

interface Handshakes {
  firstMs: number;
  repeatMs: number;
}

const mb = (x: number) => `${(x / 1024 / 1024).toFixed(1)} MB`;

export async function registrySection(ctx: Ctx): Promise<void> {
  const s = addSection(ctx, {
    id: 'registry',
    title: `Registry scale: 3 apps vs ${MANY.toLocaleString('en-US')} apps`,
    text:
      `Two apps files of hello apps, one host each (s1.localhost ... s${MANY}.localhost), every host with ` +
      'its own SNI entry (all pointing at one certificate and key, certs/default-*.pem: what is measured ' +
      "is the lookup and the secure context made on a host's first handshake, not file variety). " +
      `Start-up: spawn to the "arr listening on" line; RSS: VmRSS 1 s later; ${ctx.reps} starts of each, ` +
      'alternating. Per request: keep-alive throughput through each arr (both running) to its own ' +
      "instance of app #1, and arr's CPU time per request meanwhile (the target reads the latter: it is " +
      'the cost itself, and the noise of two arr processes sharing the machine moves it less). ' +
      "In-process: the repository's apps-file parser and route table (bench/clients/route-lookup.ts). " +
      'TLS: handshakes on new connections without resumption (bench/clients/tls-handshake.ts).',
    header: [
      'point',
      '3 apps',
      `${MANY.toLocaleString('en-US')} apps`,
      `${MANY.toLocaleString('en-US')} vs 3`,
    ],
  });
  const hosts = (n: number) =>
    Array.from({ length: n }, (_, i) => ({
      name: `s${i + 1}`,
      hosts: [{ host: `s${i + 1}.localhost`, cert: CERT, key: KEY }],
    }));
  const files: Record<string, string> = {
    small: writeApps(join(ctx.tmp, 'apps-3.json'), hosts(3)),
    big: writeApps(join(ctx.tmp, `apps-${MANY}.json`), hosts(MANY)),
  };
  const names = ['small', 'big'];

  ctx.log('registry: start-up and RSS');
  const starts = await alternate(ctx, names, async (n) => {
    const arr = await startArr(files[n]!, 'info');
    s.commands.add(arr.proc.command);
    try {
      await sleep(1000);
      return { startMs: arr.startMs, rss: rssOf(arr.proc.pid) };
    } finally {
      await arr.proc.stop();
    }
  });

  ctx.log('registry: in-process load and lookups');
  const lookups: Lookup[][] = [];
  for (let r = 0; r < ctx.reps; r++) {
    const order = r % 2 ? [files.big!, files.small!] : [files.small!, files.big!];
    const { result, command } = await runClient<Lookup[]>('route-lookup', order);
    s.commands.add(command);
    lookups.push(result.sort((a, b) => a.apps - b.apps));
  }
  const lk = (i: number, f: (l: Lookup) => number) => lookups.map((l) => f(l[i]!));

  ctx.log('registry: per-request cost and TLS handshakes');
  const arrs: Record<string, ArrUnderTest> = {};
  let hs: Record<string, Handshakes> = {};
  let ka = new Map<string, WrkResult[]>();
  try {
    arrs.small = await startArr(files.small!);
    arrs.big = await startArr(files.big!);
    for (const n of names) {
      s.commands.add(arrs[n]!.proc.command);
      await activate(arrs[n]!.port, 's1.localhost');
    }
    const target = {
      names,
      url: (n: string) => `http://127.0.0.1:${arrs[n]!.port}/`,
      host: 's1.localhost',
      connections: CONNECTIONS,
      pids: (n: string) => ({ arr: arrs[n]!.proc.pid }),
    };
    await warmUp(target);
    ka = await wrkPoint(ctx, s, target);
    const fresh = ctx.quick ? 5 : 20;
    const hsArgs = (n: string, count: number) =>
      flags({
        port: arrs[n]!.sslport,
        new: Array.from({ length: count }, (_, i) => `s${i + 2}.localhost`).join(','),
        repeat: 's1.localhost',
        count: 20,
      });
    hs = {};
    for (const [n, count] of [
      ['small', 2],
      ['big', fresh],
    ] as const) {
      const { result, command } = await runClient<Handshakes>('tls-handshake', hsArgs(n, count));
      s.commands.add(command);
      hs[n] = result;
    }
  } finally {
    await Promise.all(Object.values(arrs).map((a) => a.proc.stop()));
  }

  const st = (n: string) => starts.get(n);
  const rssDelta = med(st('big'), (x) => x.rss) - med(st('small'), (x) => x.rss);
  const perRequest = ratioOf(ka.get('big'), ka.get('small'), (r) => r.rps);
  // CPU per request is the cost itself, and less at the mercy of the machine's noise than
  // throughput (two arr processes and their instances share 2 cores with wrk).
  const cpuRatio = ratioOf(ka.get('big'), ka.get('small'), (r) => cpuOf(r, 'arr'));
  const lookupRatio =
    med(
      lk(1, (l) => l.nsPerLookup),
      (x) => x,
    ) /
    med(
      lk(0, (l) => l.nsPerLookup),
      (x) => x,
    );
  const id = (x: number) => x;
  s.rows.push(
    [
      'start-up: spawn to "arr listening on"',
      fmt.ms(med(st('small'), (x) => x.startMs)),
      fmt.ms(med(st('big'), (x) => x.startMs)),
      signed(med(st('big'), (x) => x.startMs) - med(st('small'), (x) => x.startMs)),
    ],
    [
      'RSS 1 s after start',
      mb(med(st('small'), (x) => x.rss)),
      mb(med(st('big'), (x) => x.rss)),
      `+${mb(rssDelta)}`,
    ],
    [
      'in-process: read, validate and index the apps file',
      fmt.ms(
        med(
          lk(0, (l) => l.loadMs),
          id,
        ),
      ),
      fmt.ms(
        med(
          lk(1, (l) => l.loadMs),
          id,
        ),
      ),
      '',
    ],
    [
      'in-process: one route lookup (host name to app)',
      `${fmt.num(
        med(
          lk(0, (l) => l.nsPerLookup),
          id,
        ),
      )} ns`,
      `${fmt.num(
        med(
          lk(1, (l) => l.nsPerLookup),
          id,
        ),
      )} ns`,
      fmt.ratio(lookupRatio),
    ],
    [
      'keep-alive requests/s through arr to app #1',
      fmt.rps(med(ka.get('small'), (r) => r.rps)),
      fmt.rps(med(ka.get('big'), (r) => r.rps)),
      fmt.ratio(perRequest),
    ],
    [
      "keep-alive: arr's CPU per request",
      `${fmt.num(med(ka.get('small'), (r) => cpuOf(r, 'arr')))} µs`,
      `${fmt.num(med(ka.get('big'), (r) => cpuOf(r, 'arr')))} µs`,
      fmt.ratio(cpuRatio),
    ],
    [
      'keep-alive p99 latency through arr to app #1',
      fmt.ms(med(ka.get('small'), (r) => r.p99ms)),
      fmt.ms(med(ka.get('big'), (r) => r.p99ms)),
      '',
    ],
    [
      'TLS: first handshake for a host (median over hosts)',
      fmt.ms(hs.small?.firstMs ?? Number.NaN),
      fmt.ms(hs.big?.firstMs ?? Number.NaN),
      '',
    ],
    [
      'TLS: handshake for a host seen before',
      fmt.ms(hs.small?.repeatMs ?? Number.NaN),
      fmt.ms(hs.big?.repeatMs ?? Number.NaN),
      '',
    ],
  );
  s.notes.push(
    `First handshakes: ${ctx.quick ? 5 : 20} new hosts with ${MANY.toLocaleString('en-US')} apps, 2 with 3 apps; repeated: 20 handshakes for s1.localhost, after one uncounted that comes before the new hosts' (so that these do not pay for the server's first handshake ever).`,
    "A node process with arr's modules loaded is most of the RSS; the target is read as the growth the registry causes (10,000 apps minus 3 apps).",
  );
  noteErrors(s.notes, 'keep-alive', ka);
  ctx.targets.push(
    {
      name: `${MANY.toLocaleString('en-US')} apps in the registry: RSS (growth over 3 apps)`,
      measured: `+${mb(rssDelta)} (${mb(med(st('big'), (x) => x.rss))} in all)`,
      limit: '<= 50 MB',
      pass: rssDelta <= 50 * 1024 * 1024,
    },
    {
      name: `${MANY.toLocaleString('en-US')} apps: per-request cost (arr's CPU per request, ${MANY.toLocaleString('en-US')} / 3 apps)`,
      measured: `${fmt.ratio(cpuRatio)} (throughput ratio ${fmt.ratio(perRequest)})`,
      limit: '<= 1.05 (no measurable cost)',
      pass: cpuRatio <= 1.05,
    },
  );
}
