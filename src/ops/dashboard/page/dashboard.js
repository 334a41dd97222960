// arr's dashboard. Plain scripts, served by arr (no build, no CDN), as modules: this one starts
// the page; dashboard/ has its parts. Everything that comes from arr (app names, hosts, output
// lines) reaches the page through textContent only, never as HTML; the page's CSP allows no
// inline script besides.

import { setToken } from './dashboard/access.js';
import { closeDetail } from './dashboard/detail.js';
import { $ } from './dashboard/dom.js';
import { stream } from './dashboard/live.js';
import { loadOverview } from './dashboard/overview.js';
import { PAGE_SIZE, state } from './dashboard/state.js';

$('login-form').addEventListener('submit', (e) => {
  e.preventDefault();
  setToken($('login-token').value.trim());
  $('login-token').value = '';
  start();
});

$('d-close').addEventListener('click', closeDetail);

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
