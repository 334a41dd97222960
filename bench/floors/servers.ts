// What the HTTP floors share: a server that cannot listen ends the process (the harness sees it
// exit), and SIGTERM/SIGINT close the servers and their connections.

import type { Server } from 'node:net';

export function runUntilSignal(servers: Server[], onStop?: () => void): void {
  for (const s of servers)
    s.on('error', (err) => {
      console.error(`floor: ${err.message}`);
      process.exit(1);
    });
  const stop = () => {
    for (const s of servers) {
      s.close();
      (s as Server & { closeAllConnections?: () => void }).closeAllConnections?.();
    }
    onStop?.();
  };
  process.on('SIGTERM', stop);
  process.on('SIGINT', stop);
}
