import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { ArrUnderTest } from '../../harness/arr.js';
import { type Running, startNlb } from '../../harness/proc.js';
import { CERT, type Ctx, HOST, KEY, startArr, TLS_HOST, writeApps } from '../lib/context.js';
import { childrenOf } from '../lib/cpu.js';
import { type Floor, startProxyFloor } from '../lib/floors.js';
import { activate, freePorts, LOOPBACK, waitForListen } from '../lib/net.js';
import { type Haproxy, type Nginx, startHaproxy, startNginx } from '../lib/peers.js';

/** The contenders that share one backend: the app instance that arr started, and its proxies. */
export interface Stage {
  backend: { port: number; pid: number };
  arr: ArrUnderTest;
  nginx: Nginx;
  /** The pid of nginx's one worker (the process that does the proxying). */
  nginxWorker: number;
  haproxy: Haproxy;
  nlb: { proc: Running; port: number; config: string };
  /** bench/floors/proxy.ts: the floor of a Node.js reverse proxy (HTTP, HTTPS, WebSocket). */
  nodeProxy: Floor;
  appsFile: string;
  /** How each contender was started. */
  commands: string[];
}

export async function setUpStage(ctx: Ctx): Promise<Stage> {
  const appsFile = writeApps(join(ctx.tmp, 'apps.json'), [
    // 127.0.0.1 as well: wrk sends the URL's host as SNI, and arr answers 421 when SNI and Host differ.
    { name: 'hello', hosts: [{ host: HOST }, { host: TLS_HOST }] },
  ]);
  const arr = await startArr(appsFile);
  // One activation: arr starts the instance, and its answer says which port it listens on.
  // Direct, nginx, HAProxy and nlb all go to that same process.
  const backend = await activate(arr.port, HOST);
  ctx.log(`arr on ${arr.port}/${arr.sslport}, app instance on ${backend.port} (pid ${backend.pid})`);
  const [np, ns, hp, lp, n2] = await freePorts(5);
  const nginx = await startNginx(ctx.tmp, {
    port: np!,
    sslport: ns!,
    h2port: n2!,
    backend: backend.port,
    cert: CERT,
    key: KEY,
  });
  const haproxy = await startHaproxy(ctx.tmp, { port: hp!, backend: backend.port });
  const nlbConfig = JSON.stringify([
    { port: lp, host: LOOPBACK, backends: [{ host: LOOPBACK, port: backend.port }] },
  ]);
  const nlbFile = join(ctx.tmp, 'nlb.json');
  writeFileSync(nlbFile, `${nlbConfig}\n`);
  const nlb = startNlb(['--config', nlbFile, '--log-level', 'warn']);
  await waitForListen(nlb, lp!);
  const nodeProxy = await startProxyFloor(backend.port);
  // Every contender answers from the same process.
  for (const [name, port] of [
    ['direct', backend.port],
    ['nginx', np!],
    ['haproxy', hp!],
    ['nlb', lp!],
    ['node proxy', nodeProxy.port],
  ] as const) {
    const r = await activate(port, HOST);
    if (r.pid !== backend.pid) throw new Error(`${name} answered from pid ${r.pid}, not ${backend.pid}`);
  }
  const workers = childrenOf(nginx.proc.pid);
  if (workers.length !== 1) throw new Error(`nginx has ${workers.length} worker processes, not 1`);
  return {
    backend,
    arr,
    nginx,
    nginxWorker: workers[0]!,
    haproxy,
    nlb: { proc: nlb, port: lp!, config: nlbConfig },
    nodeProxy,
    appsFile,
    commands: [arr.proc.command, nginx.proc.command, haproxy.proc.command, nlb.command, nodeProxy.command],
  };
}

export async function tearDownStage(st: Stage): Promise<void> {
  await Promise.all([
    st.nodeProxy.proc.stop(),
    st.nlb.proc.stop(),
    st.haproxy.proc.stop(),
    st.nginx.proc.stop(),
    st.arr.proc.stop(),
  ]);
}
