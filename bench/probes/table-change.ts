// What a change of one app costs arr with workers, in process: the primary's TableSender and a
// worker's WorkerRegistry over 5,000 apps as the farm's copy holds them (an object per document,
// kept while it does not change), against the whole table encoded, parsed and validated again
// (what every change cost before). Medians of 12 changes.
//
//   node dist/bench/probes/table-change.js [APPS]

import { helloApp } from '../../harness/arr.js';
import { EJSON, ObjectId } from '../../src/registry/bson.js';
import { TableSender, WorkerRegistry } from '../../src/workers/worker-registry.js';

const apps = Number(process.argv[2] ?? 5000);
const docOf = (i: number, host = `f${i}.localhost`) => ({
  ...helloApp(`f${i}`, [{ host, ssl: 'allowed' }]),
  _id: new ObjectId(i.toString(16).padStart(24, '0')),
  machines: [],
});
const docs = Array.from({ length: apps }, (_, i) => ({ doc: docOf(i + 1) as unknown }));
const sender = new TableSender();
const worker = new WorkerRegistry('mongo', () => {});
worker.take(sender.update(docs));

const whole: number[] = [];
const primary: number[] = [];
const inWorker: number[] = [];
let wholeBytes = 0;
let changeBytes = 0;
for (let r = 0; r < 12; r++) {
  const i = 1 + ((r * 37) % apps);
  docs[i - 1] = { doc: docOf(i, `r${r}.localhost`) };
  let t = performance.now();
  const encoded = EJSON.stringify(
    docs.map((d) => d.doc),
    { relaxed: true },
  );
  const parsed = EJSON.parse(encoded, { relaxed: true }) as unknown[];
  new WorkerRegistry('mongo', () => {}).take(
    EJSON.stringify({ order: parsed.map((_, k) => k), add: parsed.map((d, k) => [k, d]) }, { relaxed: true }),
  );
  whole.push(performance.now() - t);
  wholeBytes = encoded.length;
  t = performance.now();
  const change = sender.update(docs);
  primary.push(performance.now() - t);
  t = performance.now();
  worker.take(change);
  inWorker.push(performance.now() - t);
  changeBytes = change.length;
}
const median = (xs: number[]) => [...xs].sort((a, b) => a - b)[xs.length >> 1]!;
console.log(
  JSON.stringify({
    apps,
    whole: { ms: +median(whole).toFixed(1), bytes: wholeBytes },
    change: {
      primaryMs: +median(primary).toFixed(1),
      workerMs: +median(inWorker).toFixed(1),
      bytes: changeBytes,
    },
  }),
);
