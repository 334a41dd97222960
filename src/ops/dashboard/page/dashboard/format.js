// How numbers, durations and certificates read on the page.

export function duration(seconds) {
  if (seconds === null || seconds === undefined) return '?';
  const s = Math.max(0, Math.round(seconds));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  if (s < 86400) return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
  return `${Math.floor(s / 86400)}d ${Math.floor((s % 86400) / 3600)}h`;
}

export function num(n) {
  return n >= 100 ? String(Math.round(n)) : String(Math.round(n * 10) / 10);
}

/** "own cert, expires 2027-03-01", "own cert unusable", "acme cert pending", "acme order failing", "acme cert, expires ..., renews ... (ARI)". */
export function certificateLabel(c) {
  if (c.problem && c.source === 'acme')
    return c.expires
      ? `acme cert, expires ${String(c.expires).slice(0, 10)}, renewal failing`
      : 'acme order failing';
  if (c.problem) return `${c.source} cert unusable`;
  if (c.source === 'acme' && !c.expires) return 'acme cert pending';
  if (!c.expires) return `${c.source} cert`;
  const how = c.renewalSource === 'ari' ? 'ARI' : 'lifetime';
  return `${c.source} cert, expires ${String(c.expires).slice(0, 10)}${c.renews ? `, renews ${c.renews.slice(0, 10)} (${how})` : ''}`;
}
