// Preloaded into a process under test (`node --import ./dist/bench/probes/loop.js ...`): watches
// its event loop's delay and its garbage collector's pauses, and on SIGUSR2 writes what it saw
// since the previous SIGUSR2 as one line on stderr, `loop-probe {json}`, then starts over. The
// workers section reads it around each open-loop run to tell where latency comes from.

import { monitorEventLoopDelay, PerformanceObserver } from 'node:perf_hooks';

const loop = monitorEventLoopDelay({ resolution: 10 });
loop.enable();
let gcCount = 0;
let gcMs = 0;
let gcMaxMs = 0;
new PerformanceObserver((list) => {
  for (const e of list.getEntries()) {
    gcCount++;
    gcMs += e.duration;
    gcMaxMs = Math.max(gcMaxMs, e.duration);
  }
}).observe({ entryTypes: ['gc'] });

process.on('SIGUSR2', () => {
  const seen = {
    pid: process.pid,
    loopDelayP99ms: loop.percentile(99) / 1e6,
    loopDelayMaxms: loop.max / 1e6,
    gcCount,
    gcMs,
    gcMaxMs,
  };
  process.stderr.write(`loop-probe ${JSON.stringify(seen)}\n`);
  loop.reset();
  gcCount = 0;
  gcMs = 0;
  gcMaxMs = 0;
});
