/**
 * Messages between arr's primary and one of its worker processes, over the IPC pipe node:cluster
 * opens for each worker (`worker.send` on the primary's side, `process.send` on the worker's).
 * Two kinds: a note (one way: an instance is gone, the app table changed) and an ask (a question
 * with one answer: an instance for an app, the worker's counters). Only activation and
 * operations use it, never a request on its way: what a worker needs per request is in its memory.
 *
 * Envelopes carry `arr: 1` so that other messages on the same pipe (node:cluster's own travel on
 * 'internalMessage', but a library may use 'message') are left alone.
 */

/** The side of the pipe a Channel talks through: a cluster Worker, or `process` in a worker. */
export interface Pipe {
  send(message: unknown): unknown;
  on(event: 'message' | 'error', listener: (message: unknown) => void): unknown;
  off?(event: 'message' | 'error', listener: (message: unknown) => void): unknown;
  /** Whether messages can still be sent (a worker's pipe closes when it exits). */
  readonly connected?: boolean;
}

/**
 * The pipe to the primary, in a worker process: `process` itself, which has `send` only when
 * its parent opened an IPC channel (node:cluster always does for a worker).
 */
export function parentPipe(): Pipe {
  if (!hasPipe(process)) throw new Error('no IPC channel to a primary process');
  return process;
}

function hasPipe(p: NodeJS.Process): p is NodeJS.Process & Pipe {
  return typeof p.send === 'function';
}

type Envelope =
  | { arr: 1; kind: 'note'; type: string; body: unknown }
  | { arr: 1; kind: 'ask'; type: string; id: number; body: unknown }
  | { arr: 1; kind: 'answer'; id: number; body?: unknown; error?: string };

type Handler = (body: never) => unknown;

/** An ask that was not answered: the other side is gone, took too long, or failed to answer. */
export class ChannelError extends Error {}

interface Pending {
  resolve(body: unknown): void;
  reject(err: Error): void;
  timer: NodeJS.Timeout;
}

export class Channel {
  private readonly handlers = new Map<string, Handler>();
  private readonly pending = new Map<number, Pending>();
  private nextId = 1;
  private closed = false;
  /** Envelopes sent and received so far (arr_worker_messages_total: none per request). */
  readonly counts = { sent: 0, received: 0 };
  private readonly listener = (message: unknown) => this.receive(message);
  // A send to a process that has just exited fails later, as an 'error' event of the pipe
  // (EPIPE), which would throw if nobody listened: the other side is gone, so is the channel.
  private readonly onError = () => this.close();

  constructor(private readonly pipe: Pipe) {
    pipe.on('message', this.listener);
    pipe.on('error', this.onError);
  }

  /**
   * What to do with a note or an ask of this type. For an ask, the handler's value (or the value
   * its promise settles with) is the answer; a handler that throws answers with the error's
   * message, which the asking side gets as a ChannelError.
   */
  on<T>(type: string, handler: (body: T) => unknown): this {
    this.handlers.set(type, handler as Handler);
    return this;
  }

  /** Sends a note; false when the pipe is closed (the note is dropped: the other side is gone). */
  note(type: string, body?: unknown): boolean {
    return this.post({ arr: 1, kind: 'note', type, body });
  }

  /** Asks a question; rejects with a ChannelError when no answer comes within `timeoutMs`. */
  ask<T>(type: string, body: unknown, timeoutMs: number): Promise<T> {
    const id = this.nextId++;
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.pending.delete(id);
        reject(new ChannelError(`no answer to "${type}" within ${timeoutMs} ms`));
      }, timeoutMs);
      this.pending.set(id, { resolve: resolve as (body: unknown) => void, reject, timer });
      if (!this.post({ arr: 1, kind: 'ask', type, id, body }))
        this.fail(id, `"${type}": the other side is gone`);
    });
  }

  /** Stops listening; asks still waiting fail at once (the other side is gone). */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    this.pipe.off?.('message', this.listener);
    // The error listener stays: a send made just before the close may still fail after it.
    for (const id of [...this.pending.keys()]) this.fail(id, 'the channel closed');
  }

  private post(envelope: Envelope): boolean {
    if (this.closed || this.pipe.connected === false) return false;
    try {
      this.pipe.send(envelope);
      this.counts.sent++;
      return true;
    } catch {
      return false; // the pipe closed between the check and the send (the worker is exiting)
    }
  }

  private fail(id: number, why: string): void {
    const p = this.pending.get(id);
    if (!p) return;
    this.pending.delete(id);
    clearTimeout(p.timer);
    p.reject(new ChannelError(why));
  }

  private receive(message: unknown): void {
    if (!isEnvelope(message)) return;
    this.counts.received++;
    if (message.kind === 'answer') {
      const p = this.pending.get(message.id);
      if (!p) return; // answered after its timeout
      this.pending.delete(message.id);
      clearTimeout(p.timer);
      if (message.error !== undefined) p.reject(new ChannelError(message.error));
      else p.resolve(message.body);
      return;
    }
    const handler = this.handlers.get(message.type);
    if (message.kind === 'note') {
      handler?.(message.body as never);
      return;
    }
    void this.answer(message.id, message.type, handler, message.body);
  }

  private async answer(id: number, type: string, handler: Handler | undefined, body: unknown): Promise<void> {
    if (!handler) {
      this.post({ arr: 1, kind: 'answer', id, error: `nothing answers "${type}"` });
      return;
    }
    try {
      this.post({ arr: 1, kind: 'answer', id, body: await handler(body as never) });
    } catch (err) {
      this.post({ arr: 1, kind: 'answer', id, error: (err as Error).message });
    }
  }
}

function isEnvelope(m: unknown): m is Envelope {
  return typeof m === 'object' && m !== null && (m as { arr?: unknown }).arr === 1;
}
