import { readFileSync } from 'node:fs';

/**
 * An inline application (an ES module for `node --input-type=module -e`) that misbehaves on
 * request, for tests of what arr does when an instance fails mid-exchange. It logs what happens
 * to its WebSockets on stdout, which arr copies into its own output.
 *
 * HTTP:  /partial-destroy  headers with content-length 1 MB, 64 KB of body, then the socket is destroyed
 *        /partial-chunked  the same with a chunked body
 *        /partial-exit     the same, then the process exits
 *        /reset            the connection is reset before any answer
 *        /close-listener   answers (Connection: close), then stops listening (the process lives on)
 *        anything else     `trouble (pid N)`
 * WS:    /plain            the upgrade is answered 418 with a 6-byte body (content-length)
 *        /chunked          the same answer with a chunked body
 *        /hangup           the upgrade's connection is destroyed without an answer
 *        /endless-head     a 101 whose head never ends (32 KB of one field, the connection kept)
 *        /keepalive        the 418 of /chunked, the connection kept open (keep-alive)
 *        /ws-reset         accepted; sends "bye", then the TCP connection is reset
 *        /ws-burst         accepted; sends 4 MB (bytes i % 251) and closes at once (1000 "done")
 *        /ws-flood?id=I    accepted; sends 16 KB messages as fast as the client reads;
 *                          logs `flood I open` and `flood I closed CODE`
 *        /ws-slow?id=I     accepted after 300 ms; logs `slow I upgrade received`, `slow I open`,
 *                          `slow I closed` (WebSocket)
 *                          and `slow I socket closed` (its TCP connection, accepted or not)
 *        anything else     echo, first message `trouble (pid N)`
 */
export const TROUBLE_APP = `
import http from 'node:http';
import { WebSocketServer } from 'ws';

const server = http.createServer((req, res) => {
  const path = req.url.split('?')[0];
  const partial = (headers, end) => {
    res.writeHead(200, { 'content-type': 'application/octet-stream', ...headers });
    res.write(Buffer.alloc(64 * 1024, 97), () => setTimeout(end, 20));
  };
  switch (path) {
    case '/partial-destroy':
      return partial({ 'content-length': 1000000 }, () => req.socket.destroy());
    case '/partial-chunked':
      return partial({}, () => req.socket.destroy());
    case '/partial-exit':
      return partial({ 'content-length': 1000000 }, () => process.exit(1));
    case '/reset':
      return req.socket.resetAndDestroy();
    case '/close-listener':
      // Its kept-alive connections end with this answer too, so the next request has to connect.
      server.close();
      res.setHeader('connection', 'close');
      return res.end('closing (pid ' + process.pid + ')\\n');
    default:
      req.resume();
      return res.end('trouble (pid ' + process.pid + ')\\n');
  }
});

const wss = new WebSocketServer({ noServer: true, maxPayload: 1 << 20 });
server.on('upgrade', (req, socket, head) => {
  socket.on('error', () => {});
  const [path, query = ''] = req.url.split('?');
  const id = new URLSearchParams(query).get('id');
  const accept = (then) =>
    wss.handleUpgrade(req, socket, head, (ws) => {
      ws.on('error', () => {});
      then(ws);
    });
  switch (path) {
    case '/plain':
      return socket.end("HTTP/1.1 418 I'm a Teapot\\r\\ncontent-type: text/plain\\r\\ncontent-length: 6\\r\\nconnection: close\\r\\n\\r\\nteapot");
    case '/chunked':
      return socket.end("HTTP/1.1 418 I'm a Teapot\\r\\ncontent-type: text/plain\\r\\ntransfer-encoding: chunked\\r\\nconnection: close\\r\\n\\r\\n6\\r\\nteapot\\r\\n0\\r\\n\\r\\n");
    case '/hangup':
      return socket.destroy();
    case '/endless-head':
      return void socket.write('HTTP/1.1 101 Switching Protocols\\r\\nx-pad: ' + 'a'.repeat(32 * 1024));
    case '/keepalive':
      return void socket.write("HTTP/1.1 418 I'm a Teapot\\r\\ncontent-type: text/plain\\r\\ntransfer-encoding: chunked\\r\\n\\r\\n6\\r\\nteapot\\r\\n0\\r\\n\\r\\n");
    case '/ws-burst':
      return accept((ws) => {
        const big = Buffer.alloc(4 * 1024 * 1024);
        for (let i = 0; i < big.length; i++) big[i] = i % 251;
        ws.send(big);
        ws.close(1000, 'done');
      });
    case '/ws-reset':
      return accept((ws) => {
        ws.send('bye');
        setTimeout(() => socket.resetAndDestroy(), 50);
      });
    case '/ws-flood':
      return accept((ws) => {
        console.log('flood ' + id + ' open');
        ws.on('close', (code) => console.log('flood ' + id + ' closed ' + code));
        const chunk = Buffer.alloc(16 * 1024, 98);
        const pump = () => {
          while (ws.readyState === 1 && ws.bufferedAmount < 1 << 20) ws.send(chunk);
          if (ws.readyState === 1) setTimeout(pump, 1);
        };
        pump();
      });
    case '/ws-slow':
      console.log('slow ' + id + ' upgrade received');
      socket.on('close', () => console.log('slow ' + id + ' socket closed'));
      return setTimeout(
        () =>
          accept((ws) => {
            console.log('slow ' + id + ' open');
            ws.on('close', () => console.log('slow ' + id + ' closed'));
          }),
        300,
      );
    default:
      return accept((ws) => {
        ws.on('message', (data, binary) => ws.send(data, { binary }));
        ws.send('trouble (pid ' + process.pid + ')');
      });
  }
});

server.listen(Number(process.env.PORT), '127.0.0.1');
`;

function tcpEntries(): string[][] {
  const rows: string[][] = [];
  for (const table of ['/proc/net/tcp', '/proc/net/tcp6']) {
    try {
      for (const line of readFileSync(table, 'utf8').split('\n').slice(1))
        if (line.trim()) rows.push(line.trim().split(/\s+/));
    } catch {
      // no IPv6 table
    }
  }
  return rows;
}

/** Established TCP connections (as seen from the connecting side) to a local port (Linux). */
export function connectionsTo(port: number): number {
  const hexPort = port.toString(16).toUpperCase().padStart(4, '0');
  // f[2] is rem_address "IP:PORT", f[3] the state; 01 is ESTABLISHED.
  return tcpEntries().filter((f) => f[2]?.endsWith(`:${hexPort}`) && f[3] === '01').length;
}
