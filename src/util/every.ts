/**
 * Runs `task` every `ms` milliseconds, never two at once (a slow run delays the next rather
 * than overlapping it). The timer does not keep the process alive. Returns a stop function.
 */
export function every(ms: number, task: () => Promise<void>): () => void {
  let timer: NodeJS.Timeout | undefined;
  let stopped = false;
  const schedule = () => {
    if (stopped) return;
    timer = setTimeout(() => {
      task().finally(schedule);
    }, ms);
    timer.unref();
  };
  schedule();
  return () => {
    stopped = true;
    clearTimeout(timer);
  };
}
