// The overview: the summary, the farm's nodes, one page of apps.

import { api, askToken, token, Unauthorized } from './access.js';
import { drawChart } from './chart.js';
import { select } from './detail.js';
import { $, el, setPill } from './dom.js';
import { certificateLabel, duration, num } from './format.js';
import { PAGE_SIZE, SPARK_POINTS, state } from './state.js';

/** The time of the overview shown (arr's clock): uptimes count on from it with the ticks. */
let overviewTime = 0;

export async function loadOverview() {
  if (state.loading) {
    state.again = true;
    return;
  }
  state.loading = true;
  try {
    const params = new URLSearchParams({ offset: String(state.offset), limit: String(PAGE_SIZE) });
    if (state.q) params.set('q', state.q);
    if (state.sort !== 'name') params.set('sort', state.sort);
    const o = await api(`/api/overview?${params}`);
    state.overviewAt = Date.now();
    showOverview(o);
  } catch (err) {
    if (err instanceof Unauthorized) askToken(!!token());
    else setPill('live', 'arr unreachable', 'bad');
  } finally {
    state.loading = false;
    if (state.again) {
      state.again = false;
      void loadOverview();
    }
  }
}

function showOverview(o) {
  $('login').hidden = true;
  $('main').hidden = false;
  $('node').textContent = `node ${o.node}`;
  state.kind = o.registry.kind;
  showRegistry(o.registry.reachable, o.registry.kind, o.registry.problemCount);
  showProblems(o.registry);
  showSummary(o.summary);
  showFarm(o.nodes, o.farmError);
  if (o.matched > 0 && o.offset >= o.matched) {
    state.offset = Math.max(0, Math.floor((o.matched - 1) / PAGE_SIZE) * PAGE_SIZE);
    void loadOverview();
    return;
  }
  const first = o.matched === 0 ? 0 : o.offset + 1;
  $('range').textContent = `${first}–${o.offset + o.apps.length} of ${o.matched.toLocaleString('en')}`;
  $('prev').disabled = o.offset === 0;
  $('next').disabled = o.offset + o.apps.length >= o.matched;
  $('empty').hidden = o.apps.length > 0;
  overviewTime = o.time;
  const body = el('tbody');
  body.id = 'apps';
  state.rows.clear();
  for (const app of o.apps) body.append(appRow(app));
  $('apps').replaceWith(body);
  for (const [id, row] of state.rows) drawSpark(id, row);
}

export function showRegistry(reachable, kind, problems) {
  $('registry').hidden = false;
  const what = kind === 'mongo' ? 'MongoDB registry' : 'apps file';
  if (!reachable) setPill('registry', `${what} UNREACHABLE: serving from memory`, 'bad');
  else if (problems > 0)
    setPill('registry', `${what}: ${problems} problem${problems === 1 ? '' : 's'} (listed below)`, 'warn');
  else setPill('registry', `${what} ok`, 'ok');
}

function showProblems(registry) {
  $('problems').hidden = registry.problemCount === 0;
  const list = el('ul', 'problems');
  list.id = 'problem-list';
  for (const p of registry.problems) list.append(el('li', '', p));
  $('problem-list').replaceWith(list);
  const more = registry.problemCount - registry.problems.length;
  $('problem-more').hidden = more <= 0;
  $('problem-more').textContent = more > 0 ? `and ${more} more (arr's log has them all)` : '';
}

export function showSummary(s) {
  $('s-apps').textContent = s.apps.toLocaleString('en');
  $('s-instances').textContent = String(s.instances);
  $('s-backoff').textContent = String(s.backingOff);
  $('s-backoff').classList.toggle('bad', s.backingOff > 0);
  $('s-requests').textContent = num(s.requests);
  $('s-errors').textContent = num(s.errors);
  $('s-errors').classList.toggle('bad', s.errors > 0);
  $('s-websockets').textContent = String(s.websockets);
  $('s-unknown').textContent = num(s.unknownHosts ?? 0);
}

function showFarm(nodes, error) {
  $('farm').hidden = nodes === null;
  if (nodes === null) return;
  $('farm-error').hidden = error === undefined;
  $('farm-error').textContent = error === undefined ? '' : `The farm's records cannot be read: ${error}`;
  const body = el('tbody');
  body.id = 'nodes';
  const now = Date.now();
  for (const n of nodes) {
    const tr = el('tr');
    tr.append(el('td', '', n.self ? `${n.node} (this node)` : n.node));
    const live = el('td');
    live.append(el('span', `state ${n.alive ? 'ready' : 'backing-off'}`, n.alive ? 'alive' : 'dead'));
    tr.append(live);
    tr.append(el('td', '', n.lastBeat ? `${duration((now - n.lastBeat) / 1000)} ago` : 'never'));
    const runs = el('td');
    if (n.instances.length === 0) runs.append(el('span', 'none-running', 'nothing'));
    for (const i of n.instances) runs.append(el('span', 'chip', `${i.name} :${i.port}`));
    tr.append(runs);
    body.append(tr);
  }
  $('nodes').replaceWith(body);
}

function appRow(app) {
  const tr = el('tr');
  if (app.id === state.selected) tr.className = 'selected';

  const name = el('td');
  const button = el('button', 'app-name', app.name);
  button.type = 'button';
  button.title = 'show its charts and output';
  button.addEventListener('click', () => select(app.id, app.name));
  name.append(button, el('span', 'app-id', app.id));
  for (const policy of app.policies ?? []) name.append(el('span', 'tag policy', policy));
  for (const u of app.unenforced ?? []) {
    const tag = el('span', 'tag unenforced', `${u.limit} not enforced`);
    tag.title = u.why;
    name.append(tag);
  }
  tr.append(name);

  const hosts = el('td');
  for (const h of app.hosts) {
    const line = el('span', 'host', h.host);
    line.append(el('span', `tag ${h.ssl}`, h.ssl));
    const cert = el('span', `tag ${h.certificate.source}`, certificateLabel(h.certificate));
    if (h.certificate.problem) {
      cert.classList.add('unusable');
      cert.title = h.certificate.problem;
    }
    line.append(cert);
    hosts.append(line);
  }
  tr.append(hosts);
  tr.append(el('td', 'num', app.cap));

  const instances = el('td');
  const uptimes = [];
  if (app.backoff) {
    const chip = el('span', 'chip');
    chip.append(
      el('span', 'state backing-off', 'backing off'),
      document.createTextNode(` ${app.backoff.failures} failures, next try in ${app.backoff.retryIn}s`),
    );
    instances.append(chip);
  }
  for (const i of app.instances) {
    const chip = el('span', 'chip', `${i.node}:${i.port} `);
    if (i.pid !== null) chip.append(document.createTextNode(`pid ${i.pid} `));
    chip.append(el('span', `state ${i.state}`, i.state), document.createTextNode(' '));
    const uptime = el('span', 'uptime', duration(i.uptime));
    uptime.title = 'uptime';
    chip.append(uptime);
    if (typeof i.memory === 'number' || typeof i.cpu === 'number') {
      const usage = [
        typeof i.cpu === 'number' ? `${i.cpu.toFixed(1)} s CPU` : '',
        typeof i.memory === 'number' ? `${(i.memory / 1048576).toFixed(0)} MB` : '',
      ];
      chip.append(el('span', 'usage', ` ${usage.filter(Boolean).join(', ')}`));
    }
    if (i.uptime !== null) uptimes.push({ span: uptime, seconds: i.uptime, at: overviewTime });
    instances.append(chip);
  }
  if (!app.backoff && app.instances.length === 0) {
    instances.append(el('span', 'none-running', 'not running'));
    if (app.failedStarts > 0) {
      const s =
        app.failedStarts === 1 ? 'its last start failed' : `its last ${app.failedStarts} starts failed`;
      instances.append(el('span', 'failed', ` · ${s}`));
    }
  }
  if (app.lastExit) {
    const e = app.lastExit;
    const how = e.signal ? e.signal : e.code !== null ? `code ${e.code}` : '';
    const restarts =
      app.restarts > 0 ? `${app.restarts} restart${app.restarts === 1 ? '' : 's'} in the last hour · ` : '';
    const exit = el(
      'span',
      `last-exit ${e.reason}`,
      ` · ${restarts}last exit: ${e.reason}${how ? ` (${how})` : ''}`,
    );
    exit.title = `pid ${e.pid}, ${new Date(e.at).toLocaleTimeString()}`;
    instances.append(exit);
  }
  tr.append(instances);

  const requests = el('td', 'num');
  const errors = el('td', 'num');
  const latency = el('td', 'num');
  const websockets = el('td', 'num');
  const sparkCell = el('td');
  const spark = el('canvas', 'spark');
  spark.width = 120;
  spark.height = 24;
  sparkCell.append(spark);
  tr.append(requests, errors, latency, websockets, sparkCell);
  const row = { requests, errors, latency, websockets, spark, uptimes };
  state.rows.set(app.id, row);
  showTraffic(row, app.traffic);
  return tr;
}

export function showTraffic(row, t) {
  row.requests.textContent = num(t.requests);
  row.errors.textContent = num(t.errors);
  row.errors.classList.toggle('errors', t.errors > 0);
  row.latency.textContent = t.requests > 0 ? `${num(t.p50)} / ${num(t.p99)}` : '–';
  row.websockets.textContent = String(t.websockets);
}

export function drawSpark(id, row) {
  drawChart(
    row.spark,
    [{ values: state.history.get(id) ?? [], color: '#2459c9', points: SPARK_POINTS - 1 }],
    {
      fill: true,
    },
  );
}
