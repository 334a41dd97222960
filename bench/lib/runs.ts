import { runClient } from './clients.js';
import { alternate, type Ctx } from './context.js';
import type { WrkResult } from './wrk.js';

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
