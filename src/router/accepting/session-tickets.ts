import { randomBytes } from 'node:crypto';
import { every } from '../../util/every.js';
import type { Logger } from '../../util/log.js';

/** How long one set of ticket keys is used before the next. */
export const TICKET_PERIOD_MS = 12 * 60 * 60_000;

/**
 * Where the ticket keys of a period come from: a store shared by the processes and nodes that
 * should resume each other's TLS sessions (today the ACME store, farm-wide). The first to ask
 * for a period makes its keys from `fresh`; the others get the same.
 */
export interface TicketKeySource {
  ticketKeys(period: number, fresh: Buffer): Promise<Buffer>;
}

/**
 * TLS session ticket keys of the current 12-hour period, the same wherever the source is
 * shared, applied to the TLS listener and kept current. A client resumes its session on any
 * node (and after a restart) without a full handshake; old tickets stop working within two
 * periods. Without a source, each listener keeps node's own random keys.
 */
export class SessionTickets {
  private period = -1;
  private keys: Buffer | undefined;
  private apply: ((keys: Buffer) => void) | undefined;
  private stopRotation: (() => void) | undefined;
  /** The read under way: a second rotation waits for it instead of reading again. */
  private reading: Promise<void> | undefined;

  constructor(
    private readonly source: TicketKeySource,
    private readonly log: Logger,
    private readonly now: () => number = Date.now,
  ) {}

  /** Reads the current period's keys, before the listener opens. Never throws: a store down is logged. */
  load(): Promise<void> {
    return this.rotate();
  }

  /** Applies the keys read so far with `apply` (the TLS listener's setTicketKeys), then every `checkMs` the next period's. */
  start(apply: (keys: Buffer) => void, checkMs: number): void {
    this.apply = apply;
    if (this.keys) apply(this.keys);
    else void this.rotate(); // the store was down at load: tried again now
    this.stopRotation = every(checkMs, () => this.rotate());
  }

  stop(): void {
    this.stopRotation?.();
    this.apply = undefined;
  }

  /** A new period: its keys from the source, applied. */
  rotate(): Promise<void> {
    this.reading ??= this.read().finally(() => {
      this.reading = undefined;
    });
    return this.reading;
  }

  private async read(): Promise<void> {
    const period = Math.floor(this.now() / TICKET_PERIOD_MS);
    if (period === this.period) return;
    try {
      this.keys = await this.source.ticketKeys(period, randomBytes(48));
      this.period = period;
      this.apply?.(this.keys);
    } catch (err) {
      this.log.warn(`tls: cannot read the session ticket keys: ${(err as Error).message}`);
    }
  }
}
