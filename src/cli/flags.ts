/**
 * Command-line flags that name none of `options` (or their aliases). yargs' own strict mode is
 * not used because, with `.env(PREFIX)`, it also rejects unrelated PREFIX_* variables in the
 * environment; this checks the command line only.
 */
export function unknownFlags(args: string[], options: Record<string, object>): string[] {
  const known = new Set<string>(['help', 'h', 'version']);
  for (const [name, o] of Object.entries(options)) {
    known.add(name);
    if ('alias' in o && typeof o.alias === 'string') known.add(o.alias);
  }
  const unknown: string[] = [];
  for (const arg of args) {
    if (arg === '--') break;
    const long = /^--(?:no-)?([^=]+)/.exec(arg);
    if (long) {
      if (!known.has(long[1]!)) unknown.push(arg);
    } else if (/^-[^-\d]/.test(arg)) {
      for (const c of arg.slice(1).split('=')[0]!) if (!known.has(c)) unknown.push(arg);
    }
  }
  return [...new Set(unknown)];
}
