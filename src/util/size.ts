const UNITS: Record<string, number> = { '': 1, K: 1024, M: 1024 ** 2, G: 1024 ** 3, T: 1024 ** 4 };

const SIZE = /^(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?$/i;

/**
 * A size in bytes: a whole number, or a string such as "256M", "1.5G", "512KiB" (K, M, G, T are
 * powers of 1024, as cgroups, Docker and systemd read them); undefined when it is none.
 */
export function parseSize(v: unknown): number | undefined {
  if (typeof v === 'number') return Number.isSafeInteger(v) && v >= 0 ? v : undefined;
  if (typeof v !== 'string') return undefined;
  const m = SIZE.exec(v.trim());
  if (!m) return undefined;
  const bytes = Math.floor(Number(m[1]) * UNITS[m[2]!.toUpperCase()]!);
  return Number.isSafeInteger(bytes) ? bytes : undefined;
}

/** A size for people, in the largest unit that divides it: 268435456 -> "256M". */
export function formatSize(bytes: number): string {
  for (const unit of ['T', 'G', 'M', 'K'] as const)
    if (bytes > 0 && bytes % UNITS[unit]! === 0) return `${bytes / UNITS[unit]!}${unit}`;
  return String(bytes);
}
