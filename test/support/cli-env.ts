/**
 * An environment for running the arr CLI in a test: every ARR_ variable of the test process
 * (ARR_TEST_MONGO_URL, ARR_FERRETDB_CACHE, ...) but ARR_WORKERS is removed, since arr reads ARR_* as options,
 * and `extra` is added. For `runArr(args, { env })`, which merges this over process.env:
 * undefined values are left out of the child's environment.
 */
export function cliEnv(extra: Record<string, string> = {}): NodeJS.ProcessEnv {
  const env: NodeJS.ProcessEnv = {};
  // ARR_WORKERS stays: the harness (harness/proc.ts) runs arr as one process unless a test asks.
  for (const name of Object.keys(process.env))
    if (name.startsWith('ARR_') && name !== 'ARR_WORKERS') env[name] = undefined;
  return { ...env, ...extra };
}
