/**
 * Flow records: one per connection verdict of the userspace datapath, in the spirit of
 * Hubble's flows (source, destination, the service and the backend it was translated
 * to, FORWARDED or DROPPED). Each node keeps its own bounded log; `clustermesh observe`
 * merges the logs of every agent by time.
 */

export interface FlowEndpoint {
  readonly ip: string;
  readonly port: number;
  readonly cluster?: string | undefined;
  readonly namespace?: string | undefined;
  readonly pod?: string | undefined;
  readonly identity?: number | undefined;
  /** `source:key=value` labels of the identity, sorted. */
  readonly labels?: readonly string[] | undefined;
  readonly node?: string | undefined;
}

export type Verdict = 'FORWARDED' | 'DROPPED';

/**
 * Hubble's event types, as `observe --type` names them: `policy-verdict` for a connection
 * whose endpoint enforces policy in the flow's direction (allowed or denied), `drop` for
 * any other drop, `trace` for a forwarded connection no policy applied to.
 */
export type FlowType = 'policy-verdict' | 'drop' | 'trace';

/** A policy that decided a flow, as Hubble's `Policy {name, namespace, kind}`. */
export interface FlowPolicy {
  readonly kind: string;
  readonly namespace: string;
  readonly name: string;
}

export interface FlowService {
  readonly namespace: string;
  readonly name: string;
  /** `ip:port/TCP` */
  readonly frontend: string;
}

export interface Flow {
  /** Per-node sequence number, from 1; the cursor of `/v1/flows?since=`. */
  readonly seq: number;
  /** RFC 3339 with milliseconds, UTC. */
  readonly time: string;
  /** The node that observed (and decided) the flow. */
  readonly node: string;
  readonly verdict: Verdict;
  readonly dropReason?: string | undefined;
  /** Why the connection to the backend failed, for `BACKEND_UNHEALTHY` drops (`ECONNREFUSED`, …). */
  readonly error?: string | undefined;
  readonly protocol: 'TCP' | 'UDP';
  readonly source: FlowEndpoint;
  /** What was dialled: a ClusterIP for service flows, the pod itself otherwise. */
  readonly destination: FlowEndpoint;
  readonly service?: FlowService | undefined;
  /** The backend a service flow was translated to. */
  readonly backend?: FlowEndpoint | undefined;
  readonly direction: 'egress' | 'ingress';
  /** Absent in flows recorded before policy existed: read as `trace` / `drop`. */
  readonly type?: FlowType | undefined;
  readonly egress_allowed_by?: readonly FlowPolicy[] | undefined;
  readonly ingress_allowed_by?: readonly FlowPolicy[] | undefined;
  readonly egress_denied_by?: readonly FlowPolicy[] | undefined;
  readonly ingress_denied_by?: readonly FlowPolicy[] | undefined;
}

/** The type a flow has, for flows that predate the field. */
export function flowType(f: Pick<Flow, 'type' | 'verdict'>): FlowType {
  return f.type ?? (f.verdict === 'DROPPED' ? 'drop' : 'trace');
}

export type FlowRecord = Omit<Flow, 'seq' | 'time'>;

export interface FlowPage {
  readonly flows: Flow[];
  /** Pass as `since` to get the flows recorded after this page. */
  readonly next: number;
}

export const DEFAULT_FLOW_CAPACITY = 10_000;

/**
 * A fixed-size ring of the most recent flows. Recording is O(1) and never grows memory,
 * so a busy node forgets its oldest flows instead of its heap limit.
 */
export class FlowLog {
  private readonly ring: (Flow | undefined)[];
  /** Sequence number of the last recorded flow (0: none yet). */
  private last = 0;
  private readonly counts = { forwarded: 0, dropped: 0 };
  /** `reason\0direction` → drops, for `cilium_drop_count_total`. */
  private readonly drops = new Map<string, number>();

  constructor(readonly capacity: number = DEFAULT_FLOW_CAPACITY) {
    if (!Number.isInteger(capacity) || capacity < 1) {
      throw new RangeError(`flow log capacity must be a positive integer, got ${capacity}`);
    }
    this.ring = new Array<Flow | undefined>(capacity);
  }

  record(f: FlowRecord): Flow {
    const seq = ++this.last;
    const flow: Flow = { seq, time: new Date().toISOString(), ...f };
    this.ring[seq % this.capacity] = flow;
    if (f.verdict === 'FORWARDED') this.counts.forwarded++;
    else {
      this.counts.dropped++;
      const key = `${f.dropReason ?? 'unknown'}\0${f.direction}`;
      this.drops.set(key, (this.drops.get(key) ?? 0) + 1);
    }
    return flow;
  }

  /**
   * Without `since`: the most recent `limit` flows. With `since`: the oldest `limit`
   * flows after it, so a follower pages forward without gaps (except the flows the
   * ring has already overwritten). A `since` beyond the last flow means the log was
   * restarted under the reader, which then starts over from the oldest flow kept.
   */
  list(opts: { since?: number | undefined; limit?: number | undefined } = {}): FlowPage {
    const last = this.last;
    const oldest = Math.max(1, last - this.capacity + 1);
    const limit = opts.limit ?? this.capacity;
    let from: number;
    let to: number;
    if (opts.since === undefined) {
      to = last;
      from = Math.max(oldest, last - limit + 1);
    } else {
      const since = opts.since > last ? 0 : opts.since;
      from = Math.max(oldest, since + 1);
      to = Math.min(last, from + limit - 1);
    }
    const flows: Flow[] = [];
    for (let seq = from; seq <= to; seq++) {
      const f = this.ring[seq % this.capacity];
      if (f !== undefined) flows.push(f);
    }
    const next =
      flows.length > 0 ? to : opts.since === undefined ? last : Math.min(opts.since, last);
    return { flows, next };
  }

  /** Sequence number of the most recent flow (0 when none). */
  get lastSeq(): number {
    return this.last;
  }

  get forwarded(): number {
    return this.counts.forwarded;
  }

  get dropped(): number {
    return this.counts.dropped;
  }

  /** Drops since start per reason and direction. */
  dropCounts(): { reason: string; direction: 'egress' | 'ingress'; count: number }[] {
    return [...this.drops].map(([key, count]) => {
      const [reason = '', direction = ''] = key.split('\0');
      return { reason, direction: direction === 'ingress' ? 'ingress' : 'egress', count };
    });
  }
}
