import type { Server } from 'node:net';

/** A listener that could not open: the message names the option and says what to do. */
export class ListenError extends Error {}

/** Where a server listens: a port (and address), or a socket passed by the service manager. */
export interface ListenOn {
  port: number;
  host?: string;
  /** A listening socket passed by the service manager (LISTEN_FDS): taken instead of binding. */
  fd?: number;
}

/** Ports below this need privileges to bind (CAP_NET_BIND_SERVICE) on Linux. */
const PRIVILEGED_BELOW = 1024;

/**
 * Listens, or fails with a ListenError naming `option` (`-p`, `-s`, `--admin`) and the way out.
 */
export function listenOrExplain(server: Server, on: ListenOn, option: string): Promise<void> {
  return new Promise((resolve, reject) => {
    const onError = (err: NodeJS.ErrnoException) => reject(new ListenError(explain(err, on, option)));
    server.once('error', onError);
    const options = on.fd === undefined ? { port: on.port, host: on.host } : { fd: on.fd };
    server.listen(options, () => {
      server.off('error', onError);
      resolve();
    });
  });
}

function explain(err: NodeJS.ErrnoException, on: ListenOn, option: string): string {
  const code = err.code ?? 'error';
  if (on.fd !== undefined)
    return `${option}: the socket passed by the service manager (LISTEN_FDS, descriptor ${on.fd}) cannot be used: ${err.message}`;
  const where = `${option} ${on.port}${on.host ? ` on ${on.host}` : ''}`;
  switch (code) {
    case 'EADDRINUSE':
      return `${where}: the port is already in use (EADDRINUSE): stop what listens there (\`ss -ltnp 'sport = :${on.port}'\` shows it), or give ${option} another port`;
    case 'EACCES':
      return on.port < PRIVILEGED_BELOW
        ? `${where}: permission denied (EACCES): ports below ${PRIVILEGED_BELOW} need privileges. Either let systemd bind it and pass the socket (socket activation: contrib/systemd/arr.socket), or run arr as root and give each app a "user" to run as; or use a port of ${PRIVILEGED_BELOW} or more`
        : `${where}: permission denied (EACCES)`;
    case 'EADDRNOTAVAIL':
      return `${where}: ${on.host ?? 'the address'} is not an address of this machine (EADDRNOTAVAIL): give ${option === '--admin' ? '--admin' : '--bind'} one of its addresses`;
    default:
      return `${where}: cannot listen (${code}): ${err.message}`;
  }
}
