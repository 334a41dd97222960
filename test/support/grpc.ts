import { readFileSync } from 'node:fs';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import * as grpc from '@grpc/grpc-js';

/**
 * A gRPC service of raw bytes (no .proto: the messages are Buffers as they are), for tests of
 * gRPC through arr with @grpc/grpc-js on both sides. The server is grpcapp.ts, run as an app.
 */
const bytes = {
  requestSerialize: (b: Buffer) => b,
  requestDeserialize: (b: Buffer) => b,
  responseSerialize: (b: Buffer) => b,
  responseDeserialize: (b: Buffer) => b,
};

export const ECHO: grpc.ServiceDefinition = {
  unary: { path: '/test.Echo/Unary', requestStream: false, responseStream: false, ...bytes },
  serverStream: { path: '/test.Echo/ServerStream', requestStream: false, responseStream: true, ...bytes },
  clientStream: { path: '/test.Echo/ClientStream', requestStream: true, responseStream: false, ...bytes },
  bidi: { path: '/test.Echo/Bidi', requestStream: true, responseStream: true, ...bytes },
};

/** The app's script (compiled beside this module). */
export const GRPC_APP = join(dirname(fileURLToPath(import.meta.url)), 'grpcapp.js');

const repoRoot = join(dirname(fileURLToPath(import.meta.url)), '../../..');

// biome-ignore lint/suspicious/noExplicitAny: grpc-js's generic clients have methods by name.
export type EchoClient = grpc.Client & Record<string, any>;

/** A client of the echo service through arr's TLS port (arr's default certificate covers *.localhost). */
export function tlsClient(port: number, host: string): EchoClient {
  const Client = grpc.makeGenericClientConstructor(ECHO, 'Echo');
  // Node's own check refuses a wildcard over two labels (`*.localhost`); the chain is still verified.
  const creds = grpc.credentials.createSsl(
    readFileSync(join(repoRoot, 'certs/default-cert.pem')),
    null,
    null,
    {
      checkServerIdentity: (name) =>
        name.endsWith('.localhost') ? undefined : new Error(`${name} is not a .localhost name`),
    },
  );
  return new Client(`127.0.0.1:${port}`, creds, {
    'grpc.ssl_target_name_override': host,
    'grpc.default_authority': host,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  }) as EchoClient;
}

/** A client through arr's plain port (HTTP/2 by prior knowledge). */
export function plainClient(port: number, host: string): EchoClient {
  const Client = grpc.makeGenericClientConstructor(ECHO, 'Echo');
  return new Client(`127.0.0.1:${port}`, grpc.credentials.createInsecure(), {
    'grpc.default_authority': host,
    'grpc.max_receive_message_length': 16 * 1024 * 1024,
  }) as EchoClient;
}

/** A unary call as a promise. */
export function unary(
  client: EchoClient,
  message: Buffer,
  options: { metadata?: grpc.Metadata; deadline?: number } = {},
): Promise<{ reply?: Buffer; error?: grpc.ServiceError; trailers?: grpc.Metadata }> {
  return new Promise((resolve) => {
    let trailers: grpc.Metadata | undefined;
    const call = client.unary(
      message,
      options.metadata ?? new grpc.Metadata(),
      options.deadline ? { deadline: Date.now() + options.deadline } : {},
      (error: grpc.ServiceError | null, reply?: Buffer) =>
        // 'status' comes after the callback: the trailers are read from the error or the status.
        setImmediate(() =>
          resolve({ reply, error: error ?? undefined, trailers: error?.metadata ?? trailers }),
        ),
    );
    call.on('status', (s: grpc.StatusObject) => {
      trailers = s.metadata;
    });
  });
}

export { grpc };
