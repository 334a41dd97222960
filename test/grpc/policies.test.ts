import assert from 'node:assert/strict';
import { execFileSync, spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { createServer, type Server } from 'node:http';
import { homedir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ObjectId } from 'mongodb';
import { type AppDoc, type ArrUnderTest, startArrWith } from '../support/arr.js';
import { type EchoClient, GRPC_APP, grpc, plainClient, tlsClient, unary } from '../support/grpc.js';
import { freePort } from '../support/ports.js';
import { repoRoot, stopAll } from '../support/proc.js';

// Edge policies refusing gRPC calls answer in gRPC's terms (HTTP 200, grpc-status and
// grpc-message, the refusal's fields as metadata), to grpc-js and to Python's grpcio.

const DENIED = 'denied-grpc.localhost';
const RATED = 'rated-grpc.localhost';
const GUARDED = 'guarded-grpc.localhost';
const inCI = process.env.CI === 'true';
const GRPCIO_PYTHON = join(homedir(), '.cache/arr/grpcio/bin/python');

/** A bcrypt hash from Debian's htpasswd, as an operator makes one. */
const hash = (user: string, password: string) =>
  execFileSync('htpasswd', ['-nbB', user, password], { encoding: 'utf8' }).trim().split(':')[1]!;

function grpcApp(host: string, policies: Record<string, unknown>): AppDoc {
  return {
    _id: new ObjectId(),
    process: { executable: process.execPath, args: [GRPC_APP] },
    hosts: [{ host, ssl: 'allowed' }],
    instances: 1,
    protocol: 'h2c',
    ...policies,
  } as AppDoc;
}

function withMetadata(pairs: Record<string, string>): grpc.Metadata {
  const m = new grpc.Metadata();
  for (const [k, v] of Object.entries(pairs)) m.set(k, v);
  return m;
}

describe('edge policies refusing gRPC calls', () => {
  let arr: ArrUnderTest;
  let auth: Server;
  const clients: EchoClient[] = [];
  const creds = `Basic ${Buffer.from('alice:secret').toString('base64')}`;
  const client = (host: string, tls = true) => {
    const c = tls ? tlsClient(arr.sslport, host) : plainClient(arr.port, host);
    clients.push(c);
    return c;
  };

  before(async () => {
    // The auth service of forwardAuth: `x-token: ok` passes, anything else is refused with a field.
    auth = createServer((req, res) => {
      if (req.headers['x-token'] === 'ok') res.writeHead(200, { 'x-user': 'bob' }).end();
      else res.writeHead(403, { 'x-reason': 'no token' }).end('<html>go away</html>');
    });
    const authPort = await freePort();
    await new Promise<void>((r) => auth.listen(authPort, '127.0.0.1', r));
    arr = await startArrWith([
      grpcApp(DENIED, { access: { deny: ['127.0.0.0/8'] } }),
      // No instance ever answers: the first call passes the limit (and fails to start), the next is refused.
      {
        ...grpcApp(RATED, { access: { rateLimit: { requests: 1, perSeconds: 3600, burst: 1 } } }),
        process: { executable: '/bin/false' },
      },
      grpcApp(GUARDED, {
        access: {
          basicAuth: { realm: 'rpc', users: { alice: hash('alice', 'secret') } },
          forwardAuth: { url: `http://127.0.0.1:${authPort}/verify`, responseHeaders: ['X-User'] },
        },
        maxBodySize: 1000,
      }),
    ]);
  });
  after(async () => {
    for (const c of clients) c.close();
    await arr?.stop();
    await stopAll();
    auth?.closeAllConnections();
    auth?.close();
  });

  it('IP rules: PERMISSION_DENIED, over TLS and by prior knowledge', async () => {
    for (const tls of [true, false]) {
      const { error } = await unary(client(DENIED, tls), Buffer.from('x'));
      assert.equal(error?.code, grpc.status.PERMISSION_DENIED, error?.details);
      assert.equal(error?.details, 'this address may not reach this application');
    }
  });

  it('rate limit: RESOURCE_EXHAUSTED, with retry-after as metadata', async () => {
    const rated = client(RATED);
    const first = (await unary(rated, Buffer.from('x'))).error;
    assert.equal(first?.code, grpc.status.UNAVAILABLE, 'passed the limit, failed to start');
    const { error } = await unary(rated, Buffer.from('x'));
    assert.equal(error?.code, grpc.status.RESOURCE_EXHAUSTED, error?.details);
    assert.equal(error?.details, 'too many requests; slow down');
    assert.match(String(error?.metadata.get('retry-after')[0]), /^\d+$/);
  });

  it('basic auth: UNAUTHENTICATED with the challenge; forward auth: the service’s status and fields', async () => {
    const guarded = client(GUARDED);
    const none = (await unary(guarded, Buffer.from('x'))).error;
    assert.equal(none?.code, grpc.status.UNAUTHENTICATED, none?.details);
    assert.match(String(none?.metadata.get('www-authenticate')[0]), /^Basic realm="rpc"/);
    const wrong = await unary(guarded, Buffer.from('x'), {
      metadata: withMetadata({ authorization: `Basic ${Buffer.from('alice:no').toString('base64')}` }),
    });
    assert.equal(wrong.error?.code, grpc.status.UNAUTHENTICATED);
    // The auth service refuses with 403: its status as a code, its fields as metadata, not its HTML.
    const refused = (
      await unary(guarded, Buffer.from('x'), { metadata: withMetadata({ authorization: creds }) })
    ).error;
    assert.equal(refused?.code, grpc.status.PERMISSION_DENIED, refused?.details);
    assert.equal(refused?.details, 'the auth service answered 403');
    assert.deepEqual(refused?.metadata.get('x-reason'), ['no token']);
    const ok = await unary(guarded, Buffer.from('through'), {
      metadata: withMetadata({ authorization: creds, 'x-token': 'ok' }),
    });
    assert.equal(ok.error, undefined);
    assert.equal(ok.reply?.toString(), 'through');
  });

  it('body size: RESOURCE_EXHAUSTED before the answer and in the trailers of a call already answering', async () => {
    const guarded = client(GUARDED, false);
    const metadata = withMetadata({ authorization: creds, 'x-token': 'ok' });
    const big = await unary(guarded, Buffer.alloc(2000), { metadata });
    assert.equal(big.error?.code, grpc.status.RESOURCE_EXHAUSTED, big.error?.details);
    assert.equal(big.error?.details, 'the request body is larger than this application takes');
    // A bidirectional call answers its first message; its second passes the limit.
    const call = guarded.bidi(metadata);
    const status = new Promise<grpc.StatusObject>((resolve) => call.on('status', resolve));
    call.on('error', () => {});
    const echoed = new Promise<Buffer>((resolve) => call.once('data', resolve));
    call.write(Buffer.from('small'));
    assert.equal((await echoed).toString(), 'small');
    call.write(Buffer.alloc(2000));
    const s = await status;
    assert.equal(s.code, grpc.status.RESOURCE_EXHAUSTED, s.details);
    assert.equal(s.details, 'the request body is larger than this application takes');
  });

  it('the same codes to Python grpcio', {
    skip: !inCI && !existsSync(GRPCIO_PYTHON) && 'grpcio is missing (bash scripts/install-grpcio.sh)',
  }, () => {
    const script = join(repoRoot, 'test/support/grpcio-status.py');
    const py = spawnSync(GRPCIO_PYTHON, [script, `127.0.0.1:${arr.port}`, DENIED, RATED, GUARDED], {
      timeout: 30_000,
    });
    assert.equal(py.status, 0, py.stderr.toString());
    const got = JSON.parse(py.stdout.toString());
    assert.deepEqual(got[DENIED], [
      grpc.status.PERMISSION_DENIED,
      'this address may not reach this application',
    ]);
    assert.deepEqual(got[RATED], [grpc.status.RESOURCE_EXHAUSTED, 'too many requests; slow down']);
    assert.equal(got[GUARDED][0], grpc.status.UNAUTHENTICATED);
  });
});
