// Engine prototype: what arr's engine does (src/router/carrying/http-engine.ts) without routing:
// node:http in front, undici's raw dispatch interface behind (an Agent, a Pool per origin),
// header lines passed on as flat lists, the same X-Forwarded-* headers as arr.
//
//   PORT=9004 TARGET=8000 node bench/prototypes/undici-dispatch.mjs

import { Agent } from 'undici';
import { forwarded, serve, target } from './common.mjs';

const origin = `http://127.0.0.1:${target}`;
const agent = new Agent({ bodyTimeout: 0 });
const HOP = new Set(['connection', 'keep-alive', 'transfer-encoding', 'proxy-connection', 'upgrade', 'te']);

class Exchange {
  constructor(res) {
    this.res = res;
  }
  onConnect(abort) {
    this.abort = abort;
  }
  onHeaders(status, raw, resume, statusText) {
    const headers = [];
    for (let i = 0; i < raw.length; i += 2) {
      const name = raw[i].toString('latin1');
      if (!HOP.has(name.toLowerCase())) headers.push(name, raw[i + 1].toString('latin1'));
    }
    this.res.writeHead(status, statusText, headers);
    this.resume = resume;
    return true;
  }
  onData(chunk) {
    if (this.res.write(chunk)) return true;
    this.res.once('drain', this.resume);
    return false;
  }
  onComplete() {
    this.res.end();
  }
  onError() {
    if (this.res.headersSent) this.res.destroy();
    else this.res.writeHead(502).end();
  }
}

serve((req, res) => {
  const raw = req.rawHeaders;
  const headers = [];
  for (let i = 0; i < raw.length; i += 2) {
    const lower = raw[i].toLowerCase();
    if (!HOP.has(lower) && lower !== 'host' && !lower.startsWith('x-forwarded-'))
      headers.push(raw[i], raw[i + 1]);
  }
  headers.push('host', req.headers.host ?? '', ...Object.entries(forwarded(req)).flat());
  const bodyless = req.method === 'GET' || req.method === 'HEAD';
  agent.dispatch(
    { origin, path: req.url, method: req.method, headers, body: bodyless ? null : req },
    new Exchange(res),
  );
});
