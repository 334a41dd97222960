// The live stream: a tick a second (fetch, so that the token can go in a header).

import { askToken, headers, token } from './access.js';
import { drawChart } from './chart.js';
import { $, setPill } from './dom.js';
import { duration } from './format.js';
import { drawSpark, loadOverview, showRegistry, showSummary, showTraffic } from './overview.js';
import { NODE_POINTS, OVERVIEW_EVERY_MS, SPARK_POINTS, state } from './state.js';

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

export async function stream() {
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
