import assert from 'node:assert/strict';
import type { IncomingMessage } from 'node:http';
import { describe, it } from 'node:test';
import { absoluteTarget, hostName, isWebSocketUpgrade, manyHosts } from '../../src/router/deciding/host.js';

describe('host parsing (pure)', () => {
  it('takes the Host header lower-cased, without its port or a trailing dot', () => {
    assert.equal(hostName('App1.Localhost'), 'app1.localhost');
    assert.equal(hostName('app1.localhost:8080'), 'app1.localhost');
    assert.equal(hostName('app1.localhost.'), 'app1.localhost');
    assert.equal(hostName('app1.localhost.:443'), 'app1.localhost');
    assert.equal(hostName('[::1]:8080'), '[::1]');
    assert.equal(hostName('127.0.0.1'), '127.0.0.1');
  });

  it('refuses what cannot name an app', () => {
    for (const bad of [undefined, '', ':80', 'a:80:90', 'a:8o', 'a b', 'ä.localhost', '[::1', '[::1]x', '.'])
      assert.equal(hostName(bad), undefined, String(bad));
  });

  it('finds a second Host line', () => {
    assert.equal(manyHosts(['Host', 'a', 'Accept', '*/*']), false);
    assert.equal(manyHosts(['Host', 'a', 'host', 'b']), true);
  });

  it('splits an absolute-form target into its authority and path', () => {
    assert.deepEqual(absoluteTarget('http://app2.localhost/p?q=1'), {
      authority: 'app2.localhost',
      path: '/p?q=1',
    });
    assert.deepEqual(absoluteTarget('HTTPS://app2.localhost'), { authority: 'app2.localhost', path: '/' });
    assert.deepEqual(absoluteTarget('http://app2.localhost?x'), { authority: 'app2.localhost', path: '/?x' });
    assert.equal(absoluteTarget('http://user@app2.localhost/'), undefined);
    assert.equal(absoluteTarget('ftp://app2.localhost/'), undefined);
    assert.equal(absoluteTarget('/relative'), undefined);
  });

  it('tells a WebSocket handshake: GET with Upgrade naming websocket', () => {
    const req = (method: string, upgrade?: string) => ({ method, headers: { upgrade } }) as IncomingMessage;
    assert.equal(isWebSocketUpgrade(req('GET', 'websocket')), true);
    assert.equal(isWebSocketUpgrade(req('GET', 'h2c, WebSocket')), true);
    assert.equal(isWebSocketUpgrade(req('POST', 'websocket')), false);
    assert.equal(isWebSocketUpgrade(req('GET', 'h2c')), false);
    assert.equal(isWebSocketUpgrade(req('GET')), false);
  });
});
