// Prints where a CPU profile's time went (bench/lib/profile.ts) as markdown: the time by category
// (arr's own code, each package, Node.js internals, native, GC, idle) and the top functions by
// self time, over the whole profile. For a profile of arr taken by hand:
//
//   node --cpu-prof --cpu-prof-dir /tmp/prof dist/src/cli/arr.js ...   (then stop it with SIGTERM)
//   node dist/bench/profile-summary.js /tmp/prof/CPU.*.cpuprofile [--top 20]

import { readProfile, summaryMarkdown } from './lib/profile.js';

const argv = process.argv.slice(2);
const at = argv.indexOf('--top');
const top = at === -1 ? 12 : Number(argv[at + 1]);
const files = argv.filter((a, i) => a !== '--top' && (at === -1 || i !== at + 1));
if (files.length === 0 || !Number.isInteger(top) || top < 1) {
  process.stderr.write('usage: node dist/bench/profile-summary.js FILE.cpuprofile... [--top N]\n');
  process.exit(2);
}
for (const file of files)
  process.stdout.write(`## ${file}\n\n${summaryMarkdown(readProfile(file), top)}\n\n`);
