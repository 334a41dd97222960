import { Socket } from 'node:net';
import { buildConnector } from 'undici';

/**
 * Connections to instances, made by undici's own connector with one change: a write that fails
 * because the instance has closed the connection (EPIPE, ECONNRESET) does not end it at once.
 *
 * An instance may answer a request from its head alone and close (`Connection: close`, a large
 * upload it will not read). Its answer is then in arr's receive buffer, but arr is still
 * writing the body: the next write fails, Node destroys the socket on the write's error before
 * the poll that would have read the answer, and the client got 502 for an answer that had come
 * (one 200 MB upload in two). nginx delivers it. Here the failed write (and every write after
 * it) is taken as done and its bytes dropped, and the connection is read to its end: undici
 * completes an answer its connection ends (as when the instance closes after any answer), or
 * fails the request when none came ("other side closed"), as the write's error would have.
 * After EPIPE or ECONNRESET the kernel has closed the connection, so the read ends too: it
 * gives what is buffered, then end of file or the reset.
 *
 * The cost is one wrapper per connection (undici keeps them), none per request: Node's
 * Writable gives `_write` and `_writev` the same callback every time (its `onwrite`).
 */
export function instanceConnector(connectTimeoutMs: number): buildConnector.connector {
  const connect = buildConnector({ timeout: connectTimeoutMs });
  return (options, callback) => {
    connect(options, (err, socket) => {
      if (socket) readAfterWriteErrors(socket);
      (callback as (e: Error | null, s: Socket | null) => void)(err, socket);
    });
  };
}

/** The write callback Node's Writable gives (its `onwrite`), and the one passed on in its place. */
const ONWRITE = Symbol('arr.onwrite');
const HELD = Symbol('arr.onwriteHeld');
/** The write error held back: from then on, writes are dropped. */
const WRITE_ERROR = Symbol('arr.writeError');

type WriteCallback = (err?: Error | null) => void;
type InstanceSocket = Socket & {
  [ONWRITE]?: WriteCallback;
  [HELD]?: WriteCallback;
  [WRITE_ERROR]?: Error;
  _write(chunk: unknown, encoding: BufferEncoding, cb: WriteCallback): void;
  _writev(chunks: unknown, cb: WriteCallback): void;
};

const SOCKET = Socket.prototype as unknown as InstanceSocket;

function readAfterWriteErrors(socket: Socket): void {
  const s = socket as InstanceSocket;
  s._write = writeOne;
  s._writev = writeMany;
  // Every field now, so that the socket's shape does not change again at its first write.
  s[ONWRITE] = undefined;
  s[HELD] = undefined;
  s[WRITE_ERROR] = undefined;
}

function writeOne(this: InstanceSocket, chunk: unknown, encoding: BufferEncoding, cb: WriteCallback): void {
  if (this[WRITE_ERROR]) cb();
  else SOCKET._write.call(this, chunk, encoding, held(this, cb));
}

function writeMany(this: InstanceSocket, chunks: unknown, cb: WriteCallback): void {
  if (this[WRITE_ERROR]) cb();
  else SOCKET._writev.call(this, chunks, held(this, cb));
}

/** `cb`, but a write error that says the instance closed the connection is held back. */
function held(socket: InstanceSocket, cb: WriteCallback): WriteCallback {
  if (socket[ONWRITE] === cb) return socket[HELD]!;
  const wrapped: WriteCallback = (err) => {
    const code = (err as NodeJS.ErrnoException | null | undefined)?.code;
    if ((code === 'EPIPE' || code === 'ECONNRESET') && !socket.destroyed) {
      socket[WRITE_ERROR] = err!;
      cb();
    } else cb(err);
  };
  socket[ONWRITE] = cb;
  socket[HELD] = wrapped;
  return wrapped;
}
