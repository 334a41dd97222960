// arr's dashboard. Plain script, served by arr (no build, no CDN). Everything that comes from
// arr (app names, hosts, output lines) reaches the page through textContent only, never as
// HTML; the page's CSP allows no inline script besides.

const PAGE_SIZE = 50;
const TOKEN_KEY = 'arr-admin-token';
/** Ticks kept per app for the rows' sparklines, and for the node's chart. */
const SPARK_POINTS = 60;
const NODE_POINTS = 180;
/** The list is read again at least this often (uptimes, remote instances), and when an instance changes. */
const OVERVIEW_EVERY_MS = 5000;
const DETAIL_EVERY_MS = 2000;

const $ = (id) => document.getElementById(id);

const state = {
  offset: 0,
  q: '',
  sort: 'name',
  version: -1,
  overviewAt: 0,
  loading: false,
  again: false,
  /** The app whose details are open (id). */
  selected: null,
  /** Apps of the page shown, by id, with their row's cells. */
  rows: new Map(),
  /** Requests per second per app, from the ticks. */
  history: new Map(),
  nodeHistory: [],
  /** The registry's kind: file or mongo. */
  kind: null,
};

// --- access: the token, asked once and kept in this tab's session storage ------------------

function token() {
  return sessionStorage.getItem(TOKEN_KEY);
}

function headers() {
  const t = token();
  return t ? { authorization: `Bearer ${t}` } : {};
}

class Unauthorized extends Error {}

async function api(path) {
  const res = await fetch(path, { headers: headers(), cache: 'no-store' });
  if (res.status === 401) throw new Unauthorized();
  if (!res.ok) throw new Error(`${path}: ${res.status}`);
  return res.json();
}

function askToken(refused) {
  $('main').hidden = true;
  $('login').hidden = false;
  $('login-error').hidden = !refused;
  setPill('live', 'token needed', 'warn');
  $('login-token').focus();
}

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  sessionStorage.setItem(TOKEN_KEY, $('login-token').value.trim());
  $('login-token').value = '';
  start();
});

// --- small DOM helpers: text only ---------------------------------------------------------

function el(tag, className, text) {
  const e = document.createElement(tag);
  if (className) e.className = className;
  if (text !== undefined && text !== null) e.textContent = String(text);
  return e;
}

function setPill(id, text, kind) {
  const p = $(id);
  p.textContent = text;
  p.className = `pill ${kind}`;
}

function duration(seconds) {
  if (seconds === null || seconds === undefined) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

function num(n) {
  return n >= 100 ? String(Math.round(n)) : String(Math.round(n * 10) / 10);
}

// --- charts on <canvas> --------------------------------------------------------------------

/** Draws lines (each {values, color}) on a canvas, scaled to the largest value; a thin zero line. */
function drawChart(canvas, lines, { fill = false, labels = false } = {}) {
  const ratio = window.devicePixelRatio || 1;
  const width = canvas.clientWidth || canvas.width;
  const height = canvas.clientHeight || canvas.height;
  if (canvas.width !== Math.round(width * ratio)) canvas.width = Math.round(width * ratio);
  if (canvas.height !== Math.round(height * ratio)) canvas.height = Math.round(height * ratio);
  const ctx = canvas.getContext('2d');
  ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
  ctx.clearRect(0, 0, width, height);
  let max = 0;
  for (const l of lines) for (const v of l.values) if (v > max) max = v;
  const top = labels ? 14 : 2;
  const scale = max > 0 ? (height - top - 2) / max : 0;
  ctx.strokeStyle = '#e3e6eb';
  ctx.lineWidth = 1;
  ctx.beginPath();
  ctx.moveTo(0, height - 1.5);
  ctx.lineTo(width, height - 1.5);
  ctx.stroke();
  for (const l of lines) {
    const n = l.values.length;
    if (n < 2) continue;
    const step = width / (l.points ?? n - 1);
    const x0 = width - (n - 1) * step;
    ctx.beginPath();
    l.values.forEach((v, i) => {
      const x = x0 + i * step;
      const y = height - 2 - v * scale;
      if (i === 0) ctx.moveTo(x, y);
      else ctx.lineTo(x, y);
    });
    ctx.strokeStyle = l.color;
    ctx.lineWidth = 1.5;
    ctx.stroke();
    if (fill && l === lines[0]) {
      ctx.lineTo(width, height - 1);
      ctx.lineTo(x0, height - 1);
      ctx.closePath();
      ctx.fillStyle = 'rgba(36, 89, 201, 0.12)';
      ctx.fill();
    }
  }
  if (labels) {
    ctx.fillStyle = '#667085';
    ctx.font = '11px system-ui, sans-serif';
    ctx.fillText(`max ${num(max)}`, 4, 11);
  }
}

// --- the overview: summary, farm nodes, one page of apps ----------------------------------

async function loadOverview() {
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

function showRegistry(reachable, kind, problems) {
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

function showSummary(s) {
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

/** The time of the overview shown (arr's clock): uptimes count on from it with the ticks. */
let overviewTime = 0;

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

function showTraffic(row, t) {
  row.requests.textContent = num(t.requests);
  row.errors.textContent = num(t.errors);
  row.errors.classList.toggle('errors', t.errors > 0);
  row.latency.textContent = t.requests > 0 ? `${num(t.p50)} / ${num(t.p99)}` : '–';
  row.websockets.textContent = String(t.websockets);
}

function drawSpark(id, row) {
  drawChart(
    row.spark,
    [{ values: state.history.get(id) ?? [], color: '#2459c9', points: SPARK_POINTS - 1 }],
    {
      fill: true,
    },
  );
}

// --- the live stream: a tick a second (fetch, so that the token can go in a header) ------

const QUIET = { requests: 0, errors: 0, p50: 0, p99: 0, websockets: 0 };

function onTick(t) {
  setPill('live', 'live', 'ok');
  showRegistry(t.registry.reachable, state.kind, t.registry.problemCount);
  showSummary(t.summary);
  state.nodeHistory.push(t.summary.requests);
  if (state.nodeHistory.length > NODE_POINTS) state.nodeHistory.shift();
  drawChart($('s-chart'), [{ values: state.nodeHistory, color: '#2459c9', points: NODE_POINTS - 1 }], {
    fill: true,
    labels: true,
  });
  // Every app seen busy keeps its last minute; a quiet second is a zero for each of them.
  for (const [id, h] of state.history) {
    if (!(id in t.traffic)) {
      h.push(0);
      if (h.length > SPARK_POINTS) h.shift();
      if (h.every((v) => v === 0)) state.history.delete(id);
    }
  }
  for (const [id, v] of Object.entries(t.traffic)) {
    let h = state.history.get(id);
    if (!h) {
      h = [];
      state.history.set(id, h);
    }
    h.push(v[0]);
    if (h.length > SPARK_POINTS) h.shift();
  }
  for (const [id, row] of state.rows) {
    const v = t.traffic[id];
    showTraffic(row, v ? { requests: v[0], errors: v[1], p50: v[2], p99: v[3], websockets: v[4] } : QUIET);
    drawSpark(id, row);
    for (const u of row.uptimes) u.span.textContent = duration(u.seconds + (t.time - u.at) / 1000);
  }
  if (t.version !== state.version || Date.now() - state.overviewAt > OVERVIEW_EVERY_MS) {
    state.version = t.version;
    void loadOverview();
  }
}

let streamAbort = null;

async function stream() {
  streamAbort?.abort();
  const abort = new AbortController();
  streamAbort = abort;
  try {
    const res = await fetch('/api/events', { headers: headers(), cache: 'no-store', signal: abort.signal });
    if (res.status === 401) {
      askToken(!!token());
      return;
    }
    if (!res.ok || !res.body) throw new Error(`events: ${res.status}`);
    const reader = res.body.pipeThrough(new TextDecoderStream()).getReader();
    let buffer = '';
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      for (let end = buffer.indexOf('\n\n'); end >= 0; end = buffer.indexOf('\n\n')) {
        const frame = buffer.slice(0, end);
        buffer = buffer.slice(end + 2);
        const data = frame
          .split('\n')
          .filter((l) => l.startsWith('data: '))
          .map((l) => l.slice(6))
          .join('\n');
        if (data) onTick(JSON.parse(data));
      }
    }
  } catch (err) {
    if (abort.signal.aborted) return;
    console.warn('event stream', err);
  }
  if (abort.signal.aborted) return;
  setPill('live', 'reconnecting…', 'bad');
  setTimeout(() => {
    if (streamAbort === abort) void stream();
  }, 2000);
}

// --- one app's details: charts from its series, its last output ---------------------------

let detailTimer = null;

function select(id, name) {
  state.selected = id;
  $('detail').hidden = false;
  $('d-title').textContent = name;
  $('d-id').textContent = id;
  for (const [rid, row] of state.rows) row.requests.closest('tr').classList.toggle('selected', rid === id);
  clearInterval(detailTimer);
  void loadDetail();
  detailTimer = setInterval(loadDetail, DETAIL_EVERY_MS);
  $('detail').scrollIntoView({ behavior: 'smooth', block: 'nearest' });
}

async function loadDetail() {
  const id = state.selected;
  if (id === null) return;
  try {
    const key = encodeURIComponent(id);
    const [series, output] = await Promise.all([
      api(`/api/apps/${key}/series`),
      api(`/api/apps/${key}/output`),
    ]);
    if (state.selected !== id) return;
    drawChart(
      $('d-requests'),
      [
        { values: series.requests, color: '#2459c9' },
        { values: series.errors, color: '#c0262d' },
      ],
      { fill: true, labels: true },
    );
    drawChart(
      $('d-latency'),
      [
        { values: series.p50, color: '#2459c9' },
        { values: series.p99, color: '#b25e09' },
      ],
      { labels: true },
    );
    drawChart($('d-websockets'), [{ values: series.websockets, color: '#12805c' }], {
      fill: true,
      labels: true,
    });
    showOutput(output.lines);
  } catch (err) {
    if (err instanceof Unauthorized) askToken(true);
  }
}

function showOutput(lines) {
  const list = $('d-output');
  const atBottom = list.scrollTop + list.clientHeight >= list.scrollHeight - 4;
  const fresh = el('ol', 'output');
  fresh.id = 'd-output';
  for (const l of lines) {
    const li = el('li', l.stream);
    li.append(el('span', 'when', `${new Date(l.time).toLocaleTimeString()} [${l.pid}]`));
    li.append(document.createTextNode(l.text));
    fresh.append(li);
  }
  list.replaceWith(fresh);
  $('d-no-output').hidden = lines.length > 0;
  if (atBottom) fresh.scrollTop = fresh.scrollHeight;
}

$('d-close').addEventListener('click', () => {
  state.selected = null;
  clearInterval(detailTimer);
  $('detail').hidden = true;
  for (const row of state.rows.values()) row.requests.closest('tr').classList.remove('selected');
});

// --- list controls ------------------------------------------------------------------------

let filterTimer = null;
$('filter').addEventListener('input', () => {
  clearTimeout(filterTimer);
  filterTimer = setTimeout(() => {
    state.q = $('filter').value;
    state.offset = 0;
    void loadOverview();
  }, 200);
});
$('sort').addEventListener('change', () => {
  state.sort = $('sort').value;
  state.offset = 0;
  void loadOverview();
});
$('prev').addEventListener('click', () => {
  state.offset = Math.max(0, state.offset - PAGE_SIZE);
  void loadOverview();
});
$('next').addEventListener('click', () => {
  state.offset += PAGE_SIZE;
  void loadOverview();
});

function start() {
  void loadOverview();
  void stream();
}

start();

/** "own cert, expires 2027-03-01", "own cert unusable", "acme cert pending", "acme order failing", "acme cert, expires ..., renews ... (ARI)". */
function certificateLabel(c) {
  if (c.problem && c.source === 'acme')
    return c.expires
      ? `acme cert, expires ${String(c.expires).slice(0, 10)}, renewal failing`
      : 'acme order failing';
  if (c.problem) return `${c.source} cert unusable`;
  if (c.source === 'acme' && !c.expires) return 'acme cert pending';
  if (!c.expires) return `${c.source} cert`;
  const how = c.renewalSource === 'ari' ? 'ARI' : 'lifetime';
  return `${c.source} cert, expires ${String(c.expires).slice(0, 10)}${c.renews ? `, renews ${c.renews.slice(0, 10)} (${how})` : ''}`;
}
