// A thread of the bcrypt pool (bcrypt-pool.ts): verifies one password at a time, off arr's event loop.
import { parentPort } from 'node:worker_threads';
import { compareSync } from 'bcryptjs';

export interface VerifyAsk {
  password: string;
  hash: string;
}

parentPort?.on('message', ({ password, hash }: VerifyAsk) => {
  let ok = false;
  try {
    ok = compareSync(password, hash);
  } catch {
    // A hash bcryptjs cannot read matches nothing (validation refuses those already).
  }
  parentPort?.postMessage(ok);
});
