import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  answerFor,
  counted,
  instanceGone,
  MAX_ATTEMPTS,
  ProxyError,
  proxyError,
  retryable,
  upgradeAnswerFor,
} from '../../src/router/carrying/proxy-errors.js';

const errno = (code: string) => Object.assign(new Error(code), { code });

describe('proxy error catalogue (pure)', () => {
  it('reads the codes of undici and node:net once', () => {
    for (const code of [
      'ECONNREFUSED',
      'EHOSTUNREACH',
      'ENETUNREACH',
      'EADDRNOTAVAIL',
      'UND_ERR_CONNECT_TIMEOUT',
    ])
      assert.equal(proxyError(errno(code)).code, 'unreachable', code);
    assert.equal(proxyError(errno('UND_ERR_HEADERS_TIMEOUT')).code, 'timeout');
    for (const code of ['ECONNRESET', 'EPIPE', 'UND_ERR_SOCKET', 'HPE_INVALID_CONSTANT'])
      assert.equal(proxyError(errno(code)).code, 'failed', code);
    assert.equal(proxyError(new Error('no code')).code, 'failed');
    assert.equal(proxyError('a string').code, 'failed');
    const own = new ProxyError('body-timeout', 'the request body stalled');
    assert.equal(proxyError(own), own);
    assert.equal(proxyError(errno('ECONNREFUSED')).detail, 'ECONNREFUSED');
  });

  it('answers each code with its status and a sentence, and counts only the instance failures', () => {
    const answer = (code: string) => answerFor(proxyError(errno(code)));
    assert.equal(answer('ECONNREFUSED').status, 502);
    assert.equal(answer('ECONNREFUSED').message, 'the application is not reachable');
    assert.equal(answer('UND_ERR_HEADERS_TIMEOUT').status, 504);
    assert.equal(answer('ECONNRESET').message, 'the application failed to answer');
    const stalled = new ProxyError('body-timeout', 'stalled');
    assert.equal(answerFor(stalled).status, 408);
    assert.equal(counted(stalled), false);
    assert.equal(answerFor(stalled).closes, true);
    const large = new ProxyError('body-too-large', 'too large');
    assert.equal(answerFor(large).status, 413);
    assert.equal(answerFor(large).closes, true);
    assert.equal(counted(large), false);
    assert.equal(answerFor(proxyError(errno('ECONNRESET'))).closes, false);
    assert.equal(counted(proxyError(errno('ECONNRESET'))), true);
    assert.equal(instanceGone(proxyError(errno('ECONNREFUSED'))), true);
    assert.equal(instanceGone(proxyError(errno('ECONNRESET'))), false);
    assert.deepEqual(upgradeAnswerFor(proxyError(errno('ECONNRESET'))), {
      status: 502,
      message: 'the application failed',
    });
  });

  it('tries again only where the request cannot have reached the instance and is safe to send twice', () => {
    const gone = proxyError(errno('ECONNREFUSED'));
    const get = { method: 'GET', body: false, attempts: 1 };
    assert.equal(retryable(gone, get), true);
    assert.equal(retryable(gone, { ...get, method: 'HEAD' }), true);
    assert.equal(retryable(gone, { ...get, method: 'OPTIONS' }), true);
    assert.equal(retryable(gone, { ...get, method: 'POST' }), false, 'not idempotent');
    assert.equal(retryable(gone, { ...get, method: 'DELETE' }), false, 'not sent twice either');
    assert.equal(retryable(gone, { ...get, body: true }), false, 'a body is not kept to send again');
    assert.equal(retryable(gone, { ...get, attempts: MAX_ATTEMPTS }), false, 'attempts left');
    assert.equal(retryable(proxyError(errno('ECONNRESET')), get), false, 'it may have reached the instance');
    assert.equal(retryable(proxyError(errno('UND_ERR_HEADERS_TIMEOUT')), get), false);
  });
});
