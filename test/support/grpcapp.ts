import * as grpc from '@grpc/grpc-js';
import { ECHO } from './grpc.js';

/**
 * A gRPC server (@grpc/grpc-js, h2c) on $PORT, run by arr as an app of `"protocol": "h2c"`:
 *   Unary         echoes; "status:N:text" fails with code N, message text and trailing metadata
 *                 `x-detail: why`; "hang:ID" never answers and prints `cancelled ID` when the
 *                 call is cancelled; the reply carries trailing metadata `x-pid`
 *   ServerStream  "N:SIZE": N messages of SIZE bytes
 *   ClientStream  the total number of bytes received, as text
 *   Bidi          echoes each message as it comes
 * Anything else (HTTP paths, the `ready` GET) is grpc-js's UNIMPLEMENTED.
 */
const server = new grpc.Server({ 'grpc.max_receive_message_length': 16 * 1024 * 1024 });
server.addService(ECHO, {
  unary(call: grpc.ServerUnaryCall<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) {
    const text = call.request.length < 100 ? call.request.toString() : '';
    if (text.startsWith('status:')) {
      const [, code, message] = text.split(':');
      const metadata = new grpc.Metadata();
      metadata.set('x-detail', 'why');
      done({ code: Number(code), details: message, metadata });
      return;
    }
    if (text.startsWith('hang:')) {
      call.on('cancelled', () => console.log(`cancelled ${text.slice(5)}`));
      return;
    }
    const trailer = new grpc.Metadata();
    trailer.set('x-pid', String(process.pid));
    done(null, call.request, trailer);
  },
  serverStream(call: grpc.ServerWritableStream<Buffer, Buffer>) {
    const [n, size] = call.request.toString().split(':').map(Number);
    for (let i = 0; i < n!; i++) call.write(Buffer.alloc(size!, i % 251));
    call.end();
  },
  clientStream(call: grpc.ServerReadableStream<Buffer, Buffer>, done: grpc.sendUnaryData<Buffer>) {
    let total = 0;
    call.on('data', (b: Buffer) => {
      total += b.length;
    });
    call.on('end', () => done(null, Buffer.from(String(total))));
  },
  bidi(call: grpc.ServerDuplexStream<Buffer, Buffer>) {
    call.on('data', (b: Buffer) => call.write(b));
    call.on('end', () => call.end());
  },
});
server.bindAsync(`127.0.0.1:${process.env.PORT}`, grpc.ServerCredentials.createInsecure(), (err) => {
  if (err) throw err;
});
