import { fmt } from './stats.js';

/** One table of the report, with the commands that produced its numbers. */
export interface Section {
  id: string;
  title: string;
  /** What the table measures and how, in a sentence or two. */
  text: string;
  header: string[];
  rows: string[][];
  notes: string[];
  commands: Set<string>;
}

export interface Target {
  name: string;
  measured: string;
  limit: string;
  pass: boolean | undefined;
  /** The same figure of a Node.js floor measured in the same run (bench/floors), when there is one. */
  floor?: string;
}

/**
 * A target on a ratio (of throughputs): at least `min`; `floor`, the same ratio of the Node.js
 * floor in the same run (a target above it is beyond what Node.js itself does here).
 */
export function ratioTarget(name: string, ratio: number, min: number, floor?: number): Target {
  const t: Target = { name, measured: fmt.ratio(ratio), limit: `>= ${min}`, pass: ratio >= min };
  if (floor !== undefined) t.floor = fmt.ratio(floor);
  return t;
}

/** A target on a time in milliseconds, shown by `show`: at most `max`. */
export function msTarget(
  name: string,
  ms: number,
  max: number,
  show: (ms: number) => string = fmt.ms,
): Target {
  return { name, measured: show(ms), limit: `<= ${max} ms`, pass: ms <= max };
}

export function markdownTable(header: string[], rows: string[][]): string {
  const esc = (s: string) => s.replace(/\|/g, '\\|');
  const lines = [`| ${header.map(esc).join(' | ')} |`, `| ${header.map(() => '---').join(' | ')} |`];
  for (const r of rows) lines.push(`| ${r.map(esc).join(' | ')} |`);
  return lines.join('\n');
}

export function verdict(pass: boolean | undefined): string {
  return pass === undefined ? 'n/a' : pass ? 'PASS' : 'FAIL';
}

export function targetsTable(targets: Target[]): string {
  return markdownTable(
    ['target', 'measured', 'Node.js floor, same figure', 'limit', 'result'],
    targets.map((t) => [t.name, t.measured, t.floor ?? '', t.limit, verdict(t.pass)]),
  );
}

export function sectionMarkdown(s: Section, withCommands: boolean): string {
  const parts = [`### ${s.title}`, '', s.text, '', markdownTable(s.header, s.rows)];
  if (s.notes.length > 0) parts.push('', ...s.notes.map((n) => `- ${n}`));
  if (withCommands && s.commands.size > 0)
    parts.push('', "Commands (as run, with this run's ports):", '', '```', ...s.commands, '```');
  return parts.join('\n');
}
