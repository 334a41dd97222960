/**
 * Runs `task` one at a time: a call while it runs asks for one more run after it, however many
 * calls came meanwhile. Each call's promise settles when the runs it may have asked for are
 * done. `task` must not throw: it handles its own errors.
 */
export function oneAtATime(task: () => Promise<void>): () => Promise<void> {
  let running: Promise<void> | undefined;
  let again = false;
  return () => {
    if (running) {
      again = true;
      return running;
    }
    running = (async () => {
      do {
        again = false;
        await task();
      } while (again);
    })().finally(() => {
      running = undefined;
    });
    return running;
  };
}
