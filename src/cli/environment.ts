import { isAbsolute, join } from 'node:path';
import { defaultAcmeDir } from '../acme/file-store.js';
import { defaultStateDir } from '../activation/state-file.js';

/** Options whose values are secrets: a message names their variable, never the value. */
const SECRET = new Set(['mongo', 'admin-token']);

/** The ARR_* variable of an option: `--start-timeout` is ARR_START_TIMEOUT. */
export function variableOf(option: string): string {
  return `ARR_${option.replace(/-/g, '_').toUpperCase()}`;
}

/**
 * A usage message that names an option whose value came from its ARR_* variable (it is not on
 * the command line) also names that variable and its value: the operator looks for it there.
 */
export function withVariable(
  message: string,
  args: string[],
  options: Record<string, object>,
  env: NodeJS.ProcessEnv = process.env,
): string {
  const m = /--([a-z][a-z0-9-]*)|Argument: ([a-z][a-z0-9-]*)/.exec(message);
  const option = m?.[1] ?? m?.[2];
  if (option === undefined || !(option in options)) return message;
  const alias = (options[option] as { alias?: unknown }).alias;
  const given = args.some(
    (a) =>
      a === `--${option}` ||
      a.startsWith(`--${option}=`) ||
      a === `--no-${option}` ||
      (typeof alias === 'string' && (a === `-${alias}` || a.startsWith(`-${alias}=`))),
  );
  const variable = variableOf(option);
  const value = env[variable];
  if (given || value === undefined) return message;
  return `${message} (from ${variable}${SECRET.has(option) ? ', value not shown' : `="${value}"`})`;
}

/**
 * systemd's state directory for the service (`StateDirectory=arr` sets STATE_DIRECTORY), when
 * arr runs as one: the first of its absolute paths.
 */
function serviceStateDir(env: NodeJS.ProcessEnv): string | undefined {
  const first = env.STATE_DIRECTORY?.split(':')[0];
  return first && isAbsolute(first) ? first : undefined;
}

/** `--state-dir` by default: systemd's state directory, else $XDG_STATE_HOME/arr or ~/.local/state/arr. */
export function stateDirDefault(env: NodeJS.ProcessEnv = process.env): string {
  return serviceStateDir(env) ?? defaultStateDir(env);
}

/** `--acme-dir` by default: `acme` in systemd's state directory, else the XDG data directory's. */
export function acmeDirDefault(env: NodeJS.ProcessEnv = process.env): string {
  const service = serviceStateDir(env);
  return service ? join(service, 'acme') : defaultAcmeDir(env);
}
