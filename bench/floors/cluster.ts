// A floor run in node:cluster workers as arr runs its own: WORKERS processes sharing the listening
// sockets (SCHED_NONE: each worker accepts, as arr's do), each running the floor FLOOR (a module
// of this directory, `proxy.js` by default) with the same environment. What a Node.js reverse
// proxy with no state to share gains or loses from a second worker on this machine: the figure
// against which arr's own workers are read.
//
//   WORKERS=2 FLOOR=proxy.js PORT=8080 SSLPORT=8443 H2PORT=8444 TARGET=40000 \
//     CERT=certs/default-cert.pem KEY=certs/default-key.pem node dist/bench/floors/cluster.js

import cluster from 'node:cluster';

const workers = Number(process.env.WORKERS ?? 2);
const floor = process.env.FLOOR ?? 'proxy.js';

if (cluster.isPrimary) {
  process.title = 'node floor primary';
  cluster.schedulingPolicy = cluster.SCHED_NONE;
  let stopping = false;
  for (let i = 0; i < workers; i++) cluster.fork();
  cluster.on('exit', () => {
    if (!stopping) {
      console.error('floor: a worker exited');
      process.exit(1);
    }
    if (Object.keys(cluster.workers ?? {}).length === 0) process.exit(0);
  });
  const stop = () => {
    stopping = true;
    for (const w of Object.values(cluster.workers ?? {})) w?.process.kill('SIGTERM');
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
} else {
  process.title = `node floor worker ${cluster.worker?.id}`;
  await import(`./${floor}`);
}
