import type { LevelWithSilent } from 'pino';
import { type ArrConfig, UsageError } from '../config.js';
import { PassedSocketsError, ServiceNotifier, takePassedSockets } from '../ops/systemd.js';
import { StartError, startArr } from '../server.js';
import { ListenError } from '../util/listen.js';
import { createLogger } from '../util/log.js';

/**
 * `arr` itself: serves until SIGINT/SIGTERM, reloads on SIGHUP. Sockets passed by the service
 * manager (LISTEN_FDS) are taken for -p and -s; it is told when arr is ready and when it stops
 * (NOTIFY_SOCKET). A start that fails exits 1 with one line saying why; a usage error 2.
 */
export async function serve(config: ArrConfig, level: LevelWithSilent, fail: (message: string) => never) {
  let sockets: ArrConfig['sockets'];
  try {
    sockets = takePassedSockets();
  } catch (err) {
    if (err instanceof PassedSocketsError) fail(err.message);
    throw err;
  }
  const log = createLogger('arr', level);
  const notifier = ServiceNotifier.fromEnv(log);
  try {
    await startArr({ ...config, sockets }, log, notifier);
  } catch (err) {
    if (err instanceof UsageError) fail(err.message);
    const message = err instanceof StartError || err instanceof ListenError ? err.message : String(err);
    log.fatal({ err: message }, `arr could not start: ${message}`);
    process.stderr.write(`arr: ${message}\n`);
    process.exit(1);
  }
}
