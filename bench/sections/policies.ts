import { execFileSync } from 'node:child_process';
import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { ObjectId } from 'mongodb';
import { fetchVia, helloApp, writeAppsFile } from '../../harness/arr.js';
import { start } from '../../harness/proc.js';
import { addSection, type Ctx, med, ratioOf, startArr } from '../lib/context.js';
import { cpuOf, wrkCpu } from '../lib/cpu.js';
import { freePort, waitForListen } from '../lib/net.js';
import { NGINX } from '../lib/peers.js';
import { alternateWrk } from '../lib/runs.js';
import { fmt } from '../lib/stats.js';
import { wrk } from '../lib/wrk.js';

const PLAIN = 'plain.localhost';
const GUARDED = 'guarded.localhost';
const JSON_HOST = 'json.localhost';
const CONNECTIONS = 50;
/** The largest CPU per request with policies on, as a multiple of the same app's without. */
const MAX_CPU_RATIO = 1.15;
const AUTH = `Authorization: Basic ${Buffer.from('alice:secret').toString('base64')}`;

/**
 * Edge policies: arr's CPU per request for one app without policies and the same app with an
 * allow list, a rate limit (high enough never to refuse), basic auth and a response header; and
 * compression of a 20 KB JSON answer, arr vs nginx with `gzip on` at the same level (5).
 */
export async function policiesSection(ctx: Ctx): Promise<void> {
  const s = addSection(ctx, {
    id: 'policies',
    title: 'Edge policies: their CPU cost, and compression vs nginx',
    text:
      'arr with three apps: "plain" without policies; "guarded" with `access.allow`, ' +
      '`access.rateLimit` (1,000,000/s: never refusing), `access.basicAuth` (every request with ' +
      'the right password: bcrypt once, then the cache) and a response header; "json" with ' +
      '`compress`, answering a 20 KB JSON document. wrk, 1 thread, ' +
      `${CONNECTIONS} connections, keep-alive, ${ctx.seconds} s per run, median of ${ctx.reps} runs, ` +
      "alternating; CPU per request is arr's process. Compression: wrk with `Accept-Encoding: gzip` " +
      'through arr (gzip level 5) and through nginx (1 worker, `gzip on; gzip_comp_level 5; ' +
      'gzip_proxied any`) to the same instance.',
    header: ['point', 'req/s', 'arr CPU per request', 'ratio'],
  });
  const hash = execFileSync('htpasswd', ['-nbB', 'alice', 'secret'], { encoding: 'utf8' })
    .trim()
    .split(':')[1];
  const doc = (name: string, host: string, extra: object) => ({
    ...helloApp(name, [{ host, ssl: 'allowed' }]),
    _id: new ObjectId(),
    machines: [],
    ...extra,
  });
  const appsFile = writeAppsFile(join(ctx.tmp, 'apps-policies.json'), [
    doc('plain', PLAIN, {}),
    doc('guarded', GUARDED, {
      access: {
        allow: ['127.0.0.0/8', '::1'],
        rateLimit: { requests: 1_000_000, burst: 1_000_000 },
        basicAuth: { realm: 'bench', users: { alice: hash } },
      },
      headers: { response: { 'Strict-Transport-Security': 'max-age=63072000' } },
    }),
    doc('json', JSON_HOST, { compress: true }),
  ]);
  const arr = await startArr(appsFile);
  s.commands.add(arr.proc.command);
  let nginx: ReturnType<typeof start> | undefined;
  try {
    const auth = { authorization: AUTH.slice('Authorization: '.length) };
    for (const [host, headers] of [
      [PLAIN, {}],
      [GUARDED, auth],
      [JSON_HOST, {}],
    ] as const) {
      const r = await fetchVia(arr.port, host, false, { headers });
      if (r.status !== 200) throw new Error(`${host}: ${r.status} ${r.text}`);
    }
    const url = `http://127.0.0.1:${arr.port}/`;
    const point = (n: string) =>
      wrkCpu(
        {
          url,
          host: n === 'with policies' ? GUARDED : PLAIN,
          connections: CONNECTIONS,
          seconds: ctx.seconds,
          ...(n === 'with policies' ? { headers: [AUTH] } : {}),
        },
        { proxy: arr.proc.pid },
      );
    const names = ['without policies', 'with policies'];
    for (const n of names)
      await wrk({
        url,
        host: n === 'with policies' ? GUARDED : PLAIN,
        connections: CONNECTIONS,
        seconds: 1,
        headers: [AUTH],
      });
    ctx.log('policies: CPU per request with and without');
    const cpu = await alternateWrk(ctx, names, point, s);
    const perRequest = (r: Parameters<typeof cpuOf>[0]) => cpuOf(r, 'proxy');
    const ratio = ratioOf(cpu.get('with policies'), cpu.get('without policies'), perRequest);
    for (const n of names)
      s.rows.push([
        `hello, ${n}`,
        fmt.rps(med(cpu.get(n), (r) => r.rps)),
        fmt.ms(med(cpu.get(n), perRequest) / 1000),
        n === 'with policies' ? fmt.ratio(ratio) : '',
      ]);
    ctx.targets.push({
      name: 'CPU per request with policies (allow, rate limit, basic auth, headers) vs without',
      measured: fmt.ratio(ratio),
      limit: `<= ${MAX_CPU_RATIO}`,
      pass: ratio <= MAX_CPU_RATIO,
    });

    // Compression: nginx with gzip in front of the json app's instance.
    const json = await fetchVia(arr.port, JSON_HOST, false, { path: '/' });
    const backend = Number(/\(port (\d+),/.exec(json.text)![1]);
    const nginxPort = await freePort();
    nginx = startGzipNginx(ctx.tmp, nginxPort, backend);
    await waitForListen(nginx, nginxPort);
    s.commands.add(nginx.command);
    const gz = ['Accept-Encoding: gzip'];
    const ports: Record<string, number> = { arr: arr.port, nginx: nginxPort };
    const check = await fetchVia(nginxPort, JSON_HOST, false, {
      path: '/json?n=20000',
      headers: { 'accept-encoding': 'gzip' },
    });
    if (check.headers['content-encoding'] !== 'gzip') throw new Error('nginx does not compress');
    ctx.log('policies: gzip of a 20 KB JSON answer, arr vs nginx');
    const zipped = await alternateWrk(
      ctx,
      ['arr', 'nginx'],
      (n) =>
        wrk({
          url: `http://127.0.0.1:${ports[n]}/json?n=20000`,
          host: JSON_HOST,
          connections: CONNECTIONS,
          seconds: ctx.seconds,
          headers: gz,
        }),
      s,
    );
    const rps = (r: { rps: number }) => r.rps;
    const zr = ratioOf(zipped.get('arr'), zipped.get('nginx'), rps);
    s.rows.push(
      ['20 KB JSON, gzip 5, through arr', fmt.rps(med(zipped.get('arr'), rps)), '', fmt.ratio(zr)],
      ['20 KB JSON, gzip 5, through nginx', fmt.rps(med(zipped.get('nginx'), rps)), '', ''],
    );
    s.notes.push(`Compression: arr's throughput is ${fmt.ratio(zr)} x nginx's (reported, no target).`);
  } finally {
    await nginx?.stop();
    await arr.proc.stop();
  }
}

function startGzipNginx(tmp: string, port: number, backend: number): ReturnType<typeof start> {
  const d = join(tmp, 'nginx-gzip');
  mkdirSync(d, { recursive: true });
  const config = `# generated by bench/sections/policies.ts
worker_processes 1;
${process.getuid?.() === 0 ? 'user root;\n' : ''}pid ${d}/nginx.pid;
error_log ${d}/error.log warn;
events { worker_connections 4096; }
http {
  access_log off;
  client_body_temp_path ${d}/body;
  proxy_temp_path ${d}/proxy;
  keepalive_requests 1000000;
  gzip on;
  gzip_comp_level 5;
  gzip_proxied any;
  gzip_types application/json;
  upstream app { server 127.0.0.1:${backend}; keepalive 64; }
  server {
    listen 127.0.0.1:${port};
    location / {
      proxy_pass http://app;
      proxy_http_version 1.1;
      proxy_set_header Connection "";
      proxy_set_header Host $host;
    }
  }
}
`;
  const file = join(d, 'nginx.conf');
  writeFileSync(file, config);
  return start(NGINX, ['-c', file, '-p', d, '-e', `${d}/error.log`, '-g', 'daemon off;']);
}
