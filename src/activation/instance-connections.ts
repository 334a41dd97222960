import { readFile } from 'node:fs/promises';

/** The kernel's tables of TCP sockets (of arr's network namespace, which its instances share). */
const TABLES = ['/proc/net/tcp', '/proc/net/tcp6'];

/** The state of an established connection in those tables. */
const ESTABLISHED = '01';

/**
 * How many connections to a port of this machine are open, whoever made them: for a replaced
 * instance in a farm, whose exchanges with the other nodes (sent straight to it) are not counted
 * by this node. Undefined when the tables cannot be read. Read off the request path, a few times
 * a second during a drain.
 */
export async function openConnections(port: number): Promise<number | undefined> {
  const local = `:${port.toString(16).toUpperCase().padStart(4, '0')}`;
  let open = 0;
  for (const table of TABLES) {
    let text: string;
    try {
      text = await readFile(table, 'latin1');
    } catch {
      if (table === TABLES[0]) return undefined;
      continue; // no IPv6
    }
    // "  sl  local_address rem_address   st ...": the connections whose own end is the port.
    for (const line of text.split('\n')) {
      const fields = line.trim().split(/\s+/);
      if (fields[3] === ESTABLISHED && fields[1]?.endsWith(local)) open++;
    }
  }
  return open;
}
