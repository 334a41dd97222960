// What the engine prototypes share (not a prototype itself): PORT, where a prototype listens;
// TARGET, the app's port; the X-Forwarded-* headers arr adds; the listening server.

import http from 'node:http';

export const port = Number(process.env.PORT);
export const target = Number(process.env.TARGET);

/** The X-Forwarded-* headers arr adds to a request, by name. */
export function forwarded(req) {
  return {
    'x-forwarded-for': req.socket.remoteAddress,
    'x-forwarded-proto': 'http',
    'x-forwarded-host': req.headers.host ?? '',
    'x-forwarded-port': String(port),
  };
}

/** Serves `handler` on 127.0.0.1:PORT and says so. */
export function serve(handler) {
  http.createServer(handler).listen(port, '127.0.0.1', () => console.log(`listening on ${port}`));
}
