import { type LevelWithSilent, type Logger, type LoggerOptions, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };
export const LOG_LEVELS: LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/** The level an instance's output lines are logged at; `silent` drops them. */
export type OutputLevel = LevelWithSilent;

/** How pino writes JSON lines: `"level":"info"` in words (as Caddy's logs and most pipelines have it), ISO 8601 times. */
export function jsonOptions(name: string, level: LevelWithSilent): LoggerOptions {
  return {
    name,
    level,
    base: undefined,
    formatters: { level: (label) => ({ level: label }) },
    timestamp: pino.stdTimeFunctions.isoTime,
  };
}

/**
 * One line per event: JSON when stdout is not a terminal (for collectors), readable when it
 * is. Writes synchronously so that nothing is lost when the process exits right after.
 */
export function createLogger(name: string, level: LevelWithSilent = 'info'): Logger {
  if (process.stdout.isTTY) {
    return pino(
      { name, level, base: undefined },
      pretty({
        colorize: true,
        sync: true,
        singleLine: true,
        ignore: 'name',
        translateTime: 'SYS:HH:MM:ss.l',
      }),
    );
  }
  return pino(jsonOptions(name, level), pino.destination({ dest: 1, sync: true }));
}

/** Access lines are written when this many bytes are waiting (stdout's atomic write size, PIPE_BUF)... */
const ACCESS_BATCH_BYTES = 4096;
/** ...or this often, whichever comes first. */
const ACCESS_FLUSH_MS = 200;
/** When this many bytes wait for a slow stdout (a stalled collector), lines are dropped and counted. */
const ACCESS_MAX_PENDING_BYTES = 16 * 1024 * 1024;

/**
 * The access log (`--access-log`): the same lines as `log`'s, on stdout, written in the
 * background a batch at a time, so that a request costs its line's formatting and no system
 * call. Each write is whole lines of at most PIPE_BUF bytes together (a longer line alone), which
 * the kernel does not interleave with the log's own lines on a pipe. What waits is written at exit; memory stays bounded when
 * stdout does not keep up (lines are dropped, and the log says how many). On a terminal, `log`
 * itself.
 */
export function createAccessLog(log: Logger, name = 'arr'): Logger {
  if (process.stdout.isTTY) return log;
  const destination = pino.destination({
    dest: 1,
    sync: false,
    minLength: ACCESS_BATCH_BYTES - 1,
    maxWrite: ACCESS_BATCH_BYTES,
    periodicFlush: ACCESS_FLUSH_MS,
    maxLength: ACCESS_MAX_PENDING_BYTES,
  });
  let dropped = 0;
  destination.on('drop', () => {
    if (dropped++ === 0)
      destination.once('drain', () => {
        log.warn(`access log: ${dropped} lines dropped: stdout did not take them fast enough`);
        dropped = 0;
      });
  });
  const access = pino(jsonOptions(name, log.level as LevelWithSilent), destination);
  // A worker's lines carry its log's fields (`"worker": 1`): which process answered.
  const bindings = log.bindings();
  return Object.keys(bindings).length > 0 ? access.child(bindings) : access;
}
