// Engine prototype: http-proxy (arr's engine library) with arr's keep-alive Agent settings and
// nothing else: no host routing, policy or hooks. Compared with arr, it separates the cost of
// the library from the cost of arr's own request path.
//
//   PORT=9002 TARGET=8000 node bench/prototypes/http-proxy.mjs

import http from 'node:http';
import httpProxy from 'http-proxy';
import { serve, target } from './common.mjs';

const agent = new http.Agent({ keepAlive: true, maxSockets: Number.POSITIVE_INFINITY, maxFreeSockets: 256 });
const proxy = httpProxy.createProxyServer({ agent, xfwd: true, target: `http://127.0.0.1:${target}` });
proxy.on('error', (_err, _req, res) => {
  if ('writeHead' in res && !res.headersSent) res.writeHead(502);
  res.end();
});

serve((req, res) => proxy.web(req, res));
