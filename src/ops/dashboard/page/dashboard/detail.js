// One app's details: charts from its series, its last output.

import { api, askToken, Unauthorized } from './access.js';
import { drawChart } from './chart.js';
import { $, el } from './dom.js';
import { DETAIL_EVERY_MS, state } from './state.js';

let detailTimer = null;

export function select(id, name) {
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

export function closeDetail() {
  state.selected = null;
  clearInterval(detailTimer);
  $('detail').hidden = true;
  for (const row of state.rows.values()) row.requests.closest('tr').classList.remove('selected');
}
