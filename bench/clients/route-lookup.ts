// The registry in-process, without the network: how long an apps file takes to read and
// index, and how long one route lookup (host name -> app) takes, for each file given.
//
//   node dist/bench/clients/route-lookup.js apps-3.json apps-10000.json

import { readAppsFile } from '../../src/registry/apps-file.js';
import { buildRouteTable } from '../../src/registry/load.js';

const LOOKUPS = 5_000_000;
const results = [];
for (const file of process.argv.slice(2)) {
  const t0 = performance.now();
  const parsed = await readAppsFile(file);
  const { table } = buildRouteTable(parsed.docs);
  const loadMs = performance.now() - t0;
  const hosts = [...table.apps.values()].flatMap((a) => a.hosts.map((h) => h.host));
  // The same number of lookups over every host of the table, in an order that is not sequential.
  let found = 0;
  const t1 = performance.now();
  for (let i = 0; i < LOOKUPS; i++) if (table.route(hosts[(i * 7919) % hosts.length]!)) found++;
  const ns = ((performance.now() - t1) * 1e6) / LOOKUPS;
  if (found !== LOOKUPS) throw new Error(`${file}: ${LOOKUPS - found} lookups failed`);
  results.push({ file, apps: table.apps.size, hosts: table.hostCount, loadMs, nsPerLookup: ns });
}
console.log(JSON.stringify(results));
