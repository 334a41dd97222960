import { availableParallelism } from 'node:os';
import { Worker } from 'node:worker_threads';
import type { VerifyAsk } from './bcrypt-worker.js';

interface Pending extends VerifyAsk {
  settle: (ok: boolean) => void;
  fail: (error: Error) => void;
}

interface Thread {
  worker: Worker;
  job: Pending | undefined;
}

const WORKER = new URL('./bcrypt-worker.js', import.meta.url);

/**
 * bcrypt verifications on a few worker threads, so that a check (tens to hundreds of ms of CPU)
 * never holds the event loop that carries every app's requests. The threads start at the first
 * verification (an arr without basic auth starts none), keep the process alive only while they
 * have a job, and one that dies fails its job and is replaced at the next. Asks wait in one FIFO
 * queue; BasicAuth bounds how many each app may have there.
 */
export class BcryptPool {
  private readonly threads: Thread[] = [];
  private readonly queue: Pending[] = [];

  constructor(private readonly size = defaultSize()) {}

  verify = (password: string, hash: string): Promise<boolean> =>
    new Promise((settle, fail) => {
      this.queue.push({ password, hash, settle, fail });
      this.pump();
    });

  /** Ends the threads (tests; arr's own threads end with its process). */
  async close(): Promise<void> {
    const threads = this.threads.splice(0);
    await Promise.all(threads.map((t) => t.worker.terminate()));
  }

  private pump(): void {
    while (this.queue.length > 0) {
      const thread = this.idle();
      if (thread === undefined) return;
      const job = this.queue.shift()!;
      thread.job = job;
      thread.worker.ref();
      thread.worker.postMessage({ password: job.password, hash: job.hash } satisfies VerifyAsk);
    }
  }

  private idle(): Thread | undefined {
    for (const t of this.threads) if (t.job === undefined) return t;
    if (this.threads.length >= this.size) return undefined;
    const thread: Thread = { worker: new Worker(WORKER), job: undefined };
    thread.worker.on('message', (ok: boolean) => {
      const job = thread.job;
      thread.job = undefined;
      thread.worker.unref();
      job?.settle(ok);
      this.pump();
    });
    const gone = (error: Error) => {
      const i = this.threads.indexOf(thread);
      if (i < 0) return;
      this.threads.splice(i, 1);
      thread.job?.fail(error);
      thread.job = undefined;
      this.pump();
    };
    thread.worker.on('error', gone);
    thread.worker.on('exit', (code) => gone(new Error(`a bcrypt thread exited (${code})`)));
    this.threads.push(thread);
    return thread;
  }
}

/** One thread per core but one (the event loop's), at least one and at most 4. */
function defaultSize(): number {
  return Math.max(1, Math.min(4, availableParallelism() - 1));
}

let shared: BcryptPool | undefined;

/** The process's pool, made at the first verification. */
export function sharedVerify(password: string, hash: string): Promise<boolean> {
  shared ??= new BcryptPool();
  return shared.verify(password, hash);
}
