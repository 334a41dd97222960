// Engine prototype: node:http in front, an undici Pool behind (kept-alive connections to the
// app, undici's own HTTP/1.1 client instead of node's http.request), the same X-Forwarded-*
// headers as arr, through undici's stream() interface with header objects (compare
// undici-dispatch.mjs, the raw interface arr uses).
//
//   PORT=9003 TARGET=8000 node bench/prototypes/undici-pool.mjs

import http from 'node:http';
import { Pool } from 'undici';

const port = Number(process.env.PORT);
const target = Number(process.env.TARGET);
const pool = new Pool(`http://127.0.0.1:${target}`, { connections: 128, pipelining: 1 });
const HOP = ['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te', 'trailer'];

http
  .createServer((req, res) => {
    const headers = {
      ...req.headers,
      'x-forwarded-for': req.socket.remoteAddress,
      'x-forwarded-proto': 'http',
      'x-forwarded-host': req.headers.host ?? '',
      'x-forwarded-port': String(port),
    };
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
  })
  .listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
