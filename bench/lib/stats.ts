/** Median of the numbers (the mean of the middle two for an even count); NaN when empty. */
export function median(xs: number[]): number {
  const v = xs.filter((x) => Number.isFinite(x)).sort((a, b) => a - b);
  if (v.length === 0) return Number.NaN;
  const mid = v.length >> 1;
  return v.length % 2 ? v[mid]! : (v[mid - 1]! + v[mid]!) / 2;
}

/** The p-th percentile (0-100) of sorted numbers, nearest rank. */
export function percentile(sorted: number[], p: number): number {
  if (sorted.length === 0) return Number.NaN;
  const rank = Math.ceil((p / 100) * sorted.length);
  return sorted[Math.min(sorted.length - 1, Math.max(0, rank - 1))]!;
}

/** Significant figures that keep a table readable: 3 for most numbers, none past the unit. */
function num(x: number, digits = 3): string {
  if (!Number.isFinite(x)) return 'n/a';
  const abs = Math.abs(x);
  if (abs >= 10 ** digits) return Math.round(x).toLocaleString('en-US');
  return Number(x.toPrecision(digits)).toString();
}

export const fmt = {
  num,
  rps: (x: number) => (!Number.isFinite(x) ? 'n/a' : x < 1000 ? `${num(x)}/s` : `${num(x / 1000)}k/s`),
  ms: (x: number) => (Number.isFinite(x) ? (x < 1 ? `${num(x * 1000)} µs` : `${num(x)} ms`) : 'n/a'),
  bytes: (x: number) => {
    if (!Number.isFinite(x)) return 'n/a';
    const units = ['B', 'KB', 'MB', 'GB'];
    let v = x;
    let u = 0;
    while (Math.abs(v) >= 1024 && u < units.length - 1) {
      v /= 1024;
      u++;
    }
    return `${num(v)} ${units[u]}`;
  },
  bps: (x: number) => `${fmt.bytes(x)}/s`,
  ratio: (x: number) => (Number.isFinite(x) ? x.toFixed(2) : 'n/a'),
};
