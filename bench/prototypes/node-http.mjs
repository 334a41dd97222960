// Engine prototype: a minimal reverse proxy on node:http with a keep-alive Agent, adding the
// same X-Forwarded-* headers as arr. No routing, no error policy beyond a 502: it shows what
// raw node:http costs as a proxy engine.
//
//   PORT=9001 TARGET=8000 node bench/prototypes/node-http.mjs

import http from 'node:http';
import { forwarded, serve, target } from './common.mjs';

const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: 256 });

serve((req, res) => {
  const headers = { ...req.headers, ...forwarded(req) };
  delete headers.connection; // the client's connection is not the one to the app
  const upstream = http.request(
    { host: '127.0.0.1', port: target, method: req.method, path: req.url, headers, agent },
    (answer) => {
      delete answer.headers.connection;
      delete answer.headers['keep-alive'];
      res.writeHead(answer.statusCode ?? 502, answer.headers);
      answer.pipe(res);
    },
  );
  upstream.on('error', () => {
    if (!res.headersSent) res.writeHead(502);
    res.end();
  });
  req.pipe(upstream);
});
