import type { ArrConfig } from './config.js';
import type { Logger } from './util/log.js';

export async function startArr(_config: ArrConfig, log: Logger): Promise<void> {
  log.info('not yet');
}
