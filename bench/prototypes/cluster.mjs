// The "--workers N" idea, measured before building it: node:cluster runs WORKERS copies of a
// prototype (PROTO, a file of this folder) that share the listening port; the primary hands
// each new connection to a worker in turn.
//
//   PROTO=undici-dispatch.mjs WORKERS=2 PORT=9005 TARGET=8000 node bench/prototypes/cluster.mjs

import cluster from 'node:cluster';

if (cluster.isPrimary) {
  const workers = Number(process.env.WORKERS || 2);
  for (let i = 0; i < workers; i++) cluster.fork();
  for (const signal of ['SIGINT', 'SIGTERM']) process.on(signal, () => process.exit(0));
} else {
  await import(new URL(process.env.PROTO, import.meta.url).href);
}
