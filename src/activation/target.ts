import type { Duplex } from 'node:stream';
import type { App, InstanceAddress } from '../registry/types.js';
import type { SpawnedProcess } from './spawn.js';

/**
 * What the router knows of an instance, and the activation's answer and failure: the whole of
 * activation a request sees. Kept apart from how instances are started (activator.ts and the
 * modules under it), so that the router can be given instances from elsewhere (another process).
 */

/** Where a request for an app goes: the instance's registry entry and the address to dial. */
export interface Target {
  appId: string;
  /** The entry in the app's `machines`. */
  machine: InstanceAddress;
  /** Where to connect: loopback for instances of this node, the entry itself for others. */
  host: string;
  port: number;
  local: boolean;
  /** Local instances: what they serve now (kept by the router), for the idle timeout and drains. */
  activity?: Activity;
  /** Local instances: the client connections of their open WebSockets, for drains. */
  webSockets?: Set<Duplex>;
}

/** Exchanges (requests, WebSockets) an instance is serving now, and when the last one ended. */
export interface Activity {
  active: number;
  lastActive: number;
  /** Exchanges begun so far (recycle.requests reads it). */
  exchanges: number;
}

export type Activation = { kind: 'local'; target: Target } | { kind: 'remote'; machines: InstanceAddress[] };

/** One more exchange (request or WebSocket) in flight at the target: a counter, no I/O. */
export function exchangeBegan(t: Target): void {
  const a = t.activity;
  if (!a) return;
  a.active++;
  a.exchanges++;
}

/** An exchange at the target is over; the instance may be idle from now. */
export function exchangeEnded(t: Target): void {
  const a = t.activity;
  if (!a) return;
  // Idleness counts from the end of the last exchange: the clock is read only when there is one.
  if (--a.active === 0) a.lastActive = Date.now();
}

/**
 * Why a start gave no instance: `timeout` (it did not listen in time), `failed` (it could not
 * be started, or exited while starting), `unavailable` (back-off, no free port, the registry
 * or the cap, arr stopping). Each has the status a client gets.
 */
export type ActivationFailure = 'timeout' | 'failed' | 'unavailable';

const FAILURE_STATUS: Record<ActivationFailure, number> = { timeout: 504, failed: 502, unavailable: 503 };

/**
 * A start that did not give an instance. `publicMessage` is safe to show a client; the
 * error's own message is the detail for the log.
 */
export class ActivationError extends Error {
  readonly status: number;

  constructor(
    readonly kind: ActivationFailure,
    readonly publicMessage: string,
    detail: string,
    readonly retryAfterSeconds?: number,
  ) {
    super(detail);
    this.status = FAILURE_STATUS[kind];
  }

  /** The process that did not become ready, when there was one (its last output is logged with a failed deploy). */
  process?: SpawnedProcess;
}

/**
 * Where the chooser (and so the router) gets this node's instances, without knowing how they
 * are started. `localTarget` is asked per exchange and must answer from memory; `activate` and
 * `evict` are asked once per start and per failed connection. So the activator can be put in
 * another process (worker processes asking a primary) behind this interface: a worker keeps the
 * targets it was given, and is told when one goes, with no message per request.
 */
export interface InstanceSource {
  /** The app's ready instance on this node, if any: the hot path, no I/O. */
  localTarget(appId: string): Target | undefined;
  /** Finds or starts an instance for the app; concurrent callers share one attempt. */
  activate(app: App): Promise<Activation>;
  /** This node's instance of the app refused a connection (on `port`): it is stopped. */
  evict(appId: string, why: string, port?: number): void;
}
