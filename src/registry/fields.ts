/**
 * The fields an app document may have, as data: what validate.ts checks against, so that a typo
 * (`enviroment`, `readyy`, `instance`) is reported instead of silently ignored. A new field is
 * added here, with its rule in validate.ts and its line in the field table of docs/apps.md.
 */
export const APP_FIELDS: readonly string[] = [
  '_id',
  'name',
  'process',
  'hosts',
  'instances',
  'machines',
  'user',
  'group',
  'env',
  'cwd',
  'ready',
  'stopTimeout',
  'revision',
  // Limits, health checks and recycling (resource-fields.ts).
  'limits',
  'health',
  'recycle',
  // What instances speak: "http/1.1" (default) or "h2c".
  'protocol',
  // Per-app edge policies (validate-edge.ts).
  'access',
  'headers',
  'compress',
  'maxBodySize',
  'redirect',
];

/** The fields of `process`. */
export const PROCESS_FIELDS: readonly string[] = ['executable', 'args'];

/** The fields of each entry of `hosts`. */
export const HOST_FIELDS: readonly string[] = ['host', 'ssl', 'cert', 'key', 'acme'];

/**
 * The fields of `doc` that `known` does not list, each with the known field it was probably
 * meant to be (one edit or two away, or a known field it begins with), if any.
 */
export function unknownFields(
  doc: Record<string, unknown>,
  known: readonly string[],
): { field: string; meant?: string }[] {
  const out: { field: string; meant?: string }[] = [];
  for (const field of Object.keys(doc)) {
    if (known.includes(field)) continue;
    const meant = closest(field, known);
    out.push(meant === undefined ? { field } : { field, meant });
  }
  return out;
}

function closest(field: string, known: readonly string[]): string | undefined {
  const lower = field.toLowerCase();
  let best: string | undefined;
  let bestDistance = 3;
  for (const k of known) {
    const d = distance(lower, k.toLowerCase());
    if (d < bestDistance) {
      best = k;
      bestDistance = d;
    }
  }
  // `enviroment` is far from `env` by edits, but begins with it.
  return best ?? known.find((k) => k.length >= 3 && lower.startsWith(k.toLowerCase()));
}

/** Levenshtein distance (names are short: a row at a time is plenty). */
function distance(a: string, b: string): number {
  let row = Array.from({ length: b.length + 1 }, (_, j) => j);
  for (let i = 1; i <= a.length; i++) {
    const next = [i];
    for (let j = 1; j <= b.length; j++)
      next[j] = Math.min(row[j]! + 1, next[j - 1]! + 1, row[j - 1]! + (a[i - 1] === b[j - 1] ? 0 : 1));
    row = next;
  }
  return row[b.length]!;
}
