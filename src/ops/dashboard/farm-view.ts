import type { FarmRecords, InstanceRecord, NodeRecord } from '../../registry/registry.js';

/** The farm's nodes and instance entries as last read, or why they could not be read. */
export interface FarmPicture {
  nodes: NodeRecord[];
  instances: InstanceRecord[];
  /** When they were read (ms since the epoch); 0: never. */
  readAt: number;
  /** The last read failed (the previous picture is kept). */
  error?: string;
}

/** A picture younger than this is not read again: dashboards polling every second share one read. */
const FRESH_MS = 1000;
/** How long a reader waits for a read under way before it takes the last picture. */
const WAIT_MS = 1500;

/**
 * The farm as the dashboard shows it: read from the registry's store when someone looks (never
 * on the request path), at most about once a second whatever the number of viewers.
 */
export class FarmView {
  private picture: FarmPicture = { nodes: [], instances: [], readAt: 0 };
  private reading: Promise<void> | undefined;

  constructor(private readonly records: FarmRecords) {}

  async current(): Promise<FarmPicture> {
    if (Date.now() - this.picture.readAt >= FRESH_MS) {
      this.reading ??= this.read().finally(() => {
        this.reading = undefined;
      });
      let timer: NodeJS.Timeout | undefined;
      await Promise.race([
        this.reading,
        new Promise<void>((r) => {
          timer = setTimeout(r, WAIT_MS);
        }),
      ]);
      clearTimeout(timer);
    }
    return this.picture;
  }

  private async read(): Promise<void> {
    try {
      const [nodes, instances] = await Promise.all([
        this.records.nodeRecords(),
        this.records.instanceRecords(),
      ]);
      this.picture = { nodes, instances, readAt: Date.now() };
    } catch (err) {
      // Not read again at once: an unreachable database is asked once a second at most.
      this.picture = { ...this.picture, readAt: Date.now(), error: (err as Error).message };
    }
  }
}
