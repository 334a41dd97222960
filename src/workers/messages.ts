import type { ActivationFailure } from '../activation/target.js';
import type { InstanceAddress } from '../registry/types.js';

/**
 * What the primary and its workers say to each other over their Channel (channel.ts), by type.
 * Nothing here is sent per request: asks are made once per start of an app per worker, notes
 * when an instance or the app table changes, and activity summaries on an interval.
 */

/** Primary -> worker notes. */
export const TO_WORKER = {
  /** The whole app table (the registry's documents as extended JSON): at start and on each change. */
  apps: 'apps',
  /** The TLS session ticket keys (base64), the same in every worker. */
  tickets: 'tickets',
  /** An instance takes no new exchanges (it is stopping, or another took its place). */
  unserved: 'unserved',
  /** An instance is gone (or, `graceful`, drains: the worker reports when it is done with it). */
  gone: 'gone',
  /** The farm's instances on other nodes, as polled by the primary. */
  remote: 'remote',
  /** An ACME certificate the primary serves from now on (new or renewed): {host, cert, key}. */
  certificate: 'certificate',
} as const;

/** Worker -> primary notes. */
export const TO_PRIMARY = {
  /** The worker's listeners are open: it serves. */
  serving: 'serving',
  /** An instance refused a connection (InstanceSource.evict). */
  evict: 'evict',
  /** A remote instance could not be reached: its registry entry is released. */
  release: 'release',
  /** Activity summaries (ActivityRow[]): on an interval, and at once when told of a drain. */
  activity: 'activity',
} as const;

/** Asks. */
export const ASK = {
  /** Worker -> primary, first: what it serves with (Hello). */
  hello: 'hello',
  /** Worker -> primary: the whole app table (a change it could not apply to its copy; never expected). */
  table: 'table',
  /** Worker -> primary: an instance for an app (ActivateAnswer). */
  activate: 'activate',
  /** Primary -> worker: how busy is this instance (ActivityRow)? Asked before an idle stop. */
  idle: 'idle',
  /** Primary -> worker: stop accepting; answered once no request is in flight (stops, reloads). */
  settle: 'settle',
  /** Primary -> worker: end every WebSocket and exit (after `settle`). */
  end: 'end',
  /** Worker -> primary, at a handshake for a host it has no ACME certificate for: {cert, key} or null. */
  acmeCertificate: 'acme-certificate',
  /** Worker -> primary: the key authorization of an HTTP-01 token, or null. */
  acmeHttp: 'acme-http',
  /** Worker -> primary: a TLS-ALPN-01 challenge certificate, or null. */
  acmeAlpn: 'acme-alpn',
} as const;

/** What the worker needs of a local instance to send to it. */
export interface TargetBody {
  appId: string;
  machine: InstanceAddress;
  host: string;
  port: number;
}

/** The primary's answer to `activate`: a target, the farm's instances, or the failure to show. */
export type ActivateAnswer =
  | { kind: 'local'; target: TargetBody }
  | { kind: 'remote'; machines: InstanceAddress[] }
  | {
      kind: 'failed';
      failure: ActivationFailure;
      publicMessage: string;
      detail: string;
      retryAfterSeconds?: number;
    };

/** One instance's activity in one worker: [appId, port, active, lastActive, exchanges]. */
export type ActivityRow = [
  appId: string,
  port: number,
  active: number,
  lastActive: number,
  exchanges: number,
];

export interface GoneBody {
  appId: string;
  port: number;
  graceful: boolean;
}

/** `settle`'s body: when to give up waiting for requests in flight, and how long WebSockets are kept. */
export interface SettleBody {
  graceMs: number;
  /** A rolling replacement: WebSockets stay open until they close or this ends, then the worker exits. */
  retireMs?: number;
}

/** The primary's answer to `hello`: the app table, the ticket keys, the farm's instances, the passed sockets. */
export interface Hello {
  kind: 'file' | 'mongo';
  docs: string;
  tickets?: string;
  remote: [string, InstanceAddress[]][];
  sockets?: { http?: number; https?: number };
  /** With ACME on: the challenges the worker answers (asking the primary). */
  acme?: { http01: boolean; alpn: boolean };
}

export interface InstanceKey {
  appId: string;
  port: number;
}
