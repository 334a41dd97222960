import cluster from 'node:cluster';
import type { LevelWithSilent } from 'pino';
import type { CommandModule } from 'yargs';
import { hideBin } from 'yargs/helpers';
import { type ArrConfig, UsageError } from '../config.js';
import { PassedSocketsError, ServiceNotifier, takePassedSockets } from '../ops/systemd.js';
import { type RunningArr, StartError, startArr } from '../server.js';
import { ListenError } from '../util/listen.js';
import { createLogger, type Logger } from '../util/log.js';
import type { ArrArgs } from './arr-options.js';
import { commandContext } from './command-context.js';
import { arrConfig } from './serve-config.js';
import { checked, fail } from './usage.js';

/** `arr [options]`: the default command, not listed among the others (the usage line shows it). */
export const serveCommand: CommandModule<ArrArgs, ArrArgs> = {
  command: '$0',
  describe: false,
  handler: async (argv) => {
    const words = argv._.map(String);
    if (words.length > 0) fail(unknownCommand(words));
    const { mongo, stateDir } = await commandContext(argv);
    const config = await checked(() => arrConfig(argv, mongo, stateDir));
    await serve(config, argv['log-level']);
  },
};

/**
 * Words on the command line that name no command. yargs' strictCommands does not see them when
 * there is a default command: they are refused here in its words (after `--`, in arr's own).
 */
function unknownCommand(words: string[]): string {
  if (hideBin(process.argv).includes('--')) return `unknown command "${words[0]}" (see arr --help)`;
  return words.length === 1 ? `Unknown command: ${words[0]}` : `Unknown commands: ${words.join(', ')}`;
}

/**
 * `arr` itself: serves until SIGINT/SIGTERM, reloads on SIGHUP. Sockets passed by the service
 * manager (LISTEN_FDS) are taken for -p and -s; it is told when arr is ready and when it stops
 * (NOTIFY_SOCKET). A start that fails exits 1 with one line saying why; a usage error 2.
 */
async function serve(config: ArrConfig, level: LevelWithSilent): Promise<void> {
  if (cluster.isWorker) {
    await serveAsWorker(config, level);
    return;
  }
  let sockets: ArrConfig['sockets'];
  try {
    sockets = takePassedSockets();
  } catch (err) {
    if (err instanceof PassedSocketsError) fail(err.message);
    throw err;
  }
  const log = createLogger('arr', level);
  const notifier = ServiceNotifier.fromEnv(log);
  let arr: RunningArr;
  try {
    arr =
      config.workers > 0
        ? await (await import('../primary.js')).startPrimary({ ...config, sockets }, log, notifier)
        : await startArr({ ...config, sockets }, log, notifier);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message);
    const message = err instanceof StartError || err instanceof ListenError ? err.message : String(err);
    log.fatal({ err: message }, `arr could not start: ${message}`);
    process.stderr.write(`arr: ${message}\n`);
    process.exit(1);
  }
  handleSignals(arr, log);
  // Last, once SIGINT, SIGTERM and SIGHUP are handled: whoever waits for this may signal.
  arr.serving();
}

/** SIGINT and SIGTERM stop arr (exit 0 once stopped, 1 if the stop failed); SIGHUP reloads it. */
function handleSignals(arr: RunningArr, log: Logger): void {
  // A reload, not an end: a hang-up of the terminal, or `systemctl reload arr`.
  process.on('SIGHUP', () => {
    if (arr.stopping) return;
    log.info('SIGHUP: reloading');
    arr.reload().catch((err: unknown) => log.error({ err }, 'reload failed'));
  });
  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      arr.stop().then(
        () => process.exit(0),
        (err: unknown) => {
          log.error({ err }, 'arr did not stop cleanly');
          process.exit(1);
        },
      );
    });
  }
}

/** A worker process of `--workers N`: its signals are the primary's; it exits when told, or when the primary is gone. */
async function serveAsWorker(config: ArrConfig, level: LevelWithSilent): Promise<void> {
  const log = createLogger('arr', level);
  try {
    await (await import('../worker.js')).startWorker(config, log);
  } catch (err) {
    const message = err instanceof ListenError ? err.message : String(err);
    log.fatal({ err: message }, `arr worker could not start: ${message}`);
    process.exit(1);
  }
}
