import { runClient } from './clients.js';
import { alternate, type Ctx } from './context.js';
import { wrkCpu } from './cpu.js';
import { type WrkResult, wrk } from './wrk.js';

/** `alternate` for wrk runs, recording each distinct command in the section. */
export function alternateWrk(
  ctx: Ctx,
  names: string[],
  fn: (name: string) => Promise<WrkResult>,
  s: { commands: Set<string> },
): Promise<Map<string, WrkResult[]>> {
  return alternate(ctx, names, async (n) => {
    const r = await fn(n);
    s.commands.add(r.command);
    return r;
  });
}

/** `alternate` for one of bench/clients, recording each distinct command in the section. */
export function alternateClient<T>(
  ctx: Ctx,
  names: string[],
  s: { commands: Set<string> },
  args: (name: string) => string[],
  client = 'rate',
): Promise<Map<string, T[]>> {
  return alternate(ctx, names, async (n) => {
    const { result, command } = await runClient<T>(client, args(n));
    s.commands.add(command);
    return result;
  });
}

/** The contenders of a wrk point: where each one listens and which of its processes to watch. */
export interface WrkTarget {
  names: string[];
  url: (name: string) => string;
  /** The Host header. */
  host: string;
  connections: number;
  /** The processes whose CPU per request each run measures, by label; default none. */
  pids?: (name: string) => Record<string, number>;
}

/** An uncounted 1 s wrk run of every contender. */
export async function warmUp(t: WrkTarget): Promise<void> {
  for (const n of t.names) await wrk({ url: t.url(n), host: t.host, connections: t.connections, seconds: 1 });
}

/**
 * `alternateWrk` of `ctx.seconds` wrk runs that also measure CPU per request (see `wrkCpu`);
 * `close`: a new connection (and TLS handshake) per request, instead of keep-alive.
 */
export function wrkPoint(
  ctx: Ctx,
  s: { commands: Set<string> },
  t: WrkTarget,
  close = false,
): Promise<Map<string, WrkResult[]>> {
  const o = { host: t.host, connections: t.connections, seconds: ctx.seconds, close };
  return alternateWrk(ctx, t.names, (n) => wrkCpu({ ...o, url: t.url(n) }, t.pids?.(n) ?? {}), s);
}
