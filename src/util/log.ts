import { type LevelWithSilent, type Logger, pino } from 'pino';
import pretty from 'pino-pretty';

export type { Logger };
export const LOG_LEVELS: LevelWithSilent[] = ['fatal', 'error', 'warn', 'info', 'debug', 'trace', 'silent'];

/**
 * One line per event: JSON when stdout is not a terminal (for collectors), readable when it
 * is. Writes synchronously so that nothing is lost when the process exits right after.
 */
export function createLogger(name: string, level: LevelWithSilent = 'info'): Logger {
  const options = { name, level, base: undefined };
  if (process.stdout.isTTY) {
    return pino(
      options,
      pretty({
        colorize: true,
        sync: true,
        singleLine: true,
        ignore: 'name',
        translateTime: 'SYS:HH:MM:ss.l',
      }),
    );
  }
  return pino(options, pino.destination({ dest: 1, sync: true }));
}
