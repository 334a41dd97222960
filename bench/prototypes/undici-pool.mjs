// Engine prototype: node:http in front, an undici Pool behind (kept-alive connections to the
// app, undici's own HTTP/1.1 client instead of node's http.request), the same X-Forwarded-*
// headers as arr, through undici's stream() interface with header objects (compare
// undici-dispatch.mjs, the raw interface arr uses).
//
//   PORT=9003 TARGET=8000 node bench/prototypes/undici-pool.mjs

import { Pool } from 'undici';
import { forwarded, serve, target } from './common.mjs';

const pool = new Pool(`http://127.0.0.1:${target}`, { connections: 128, pipelining: 1 });
const HOP = ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer'];

serve((req, res) => {
  const headers = { ...req.headers, ...forwarded(req) };
  for (const h of HOP) delete headers[h];
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  pool.stream(
    { path: req.url, method: req.method, headers, body: bodyless ? null : req },
    ({ statusCode, headers: answer }) => {
      for (const h of HOP) delete answer[h];
      res.writeHead(statusCode, answer);
      return res;
    },
    (err) => {
      if (!err) return;
      if (!res.headersSent) res.writeHead(502);
      res.end();
    },
  );
});
