import type { PortRange } from './cli/options.js';

/** Everything `arr` runs with, validated by the CLI. */
export interface ArrConfig {
  /** MongoDB URL of the farm's registry; the file registry is used without it. */
  mongo?: string;
  /** Absolute path of the file registry. */
  apps: string;
  range: PortRange;
  port: number;
  sslport: number;
  /** The default (non-SNI) certificate and its key, PEM. */
  cert: Buffer;
  key: Buffer;
  /** The address recorded in `machines` for instances started here. */
  advertise: string;
  /** Listen address of both ports; all interfaces when undefined. */
  bind?: string;
  /** How long an instance has to accept connections after it is spawned. */
  startTimeoutMs: number;
  /** With MongoDB: how often the registry is read again. */
  pollMs: number;
  /** With MongoDB: how often this node beats; it is taken for dead after 5 missed beats. */
  heartbeatMs: number;
}
