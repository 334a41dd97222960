/** `--name value` pairs of a client's command line. */
export function parseArgs(argv: string[]): Map<string, string> {
  const out = new Map<string, string>();
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]!;
    if (!a.startsWith('--')) throw new Error(`unexpected argument ${a}`);
    out.set(a.slice(2), argv[i + 1] ?? '');
    i++;
  }
  return out;
}

export function need(args: Map<string, string>, name: string): string {
  const v = args.get(name);
  if (v === undefined || v === '') throw new Error(`--${name} is required`);
  return v;
}

export function needNumber(args: Map<string, string>, name: string, fallback?: number): number {
  const v = args.get(name);
  if (v === undefined) {
    if (fallback === undefined) throw new Error(`--${name} is required`);
    return fallback;
  }
  const n = Number(v);
  if (!Number.isFinite(n)) throw new Error(`--${name} must be a number`);
  return n;
}
