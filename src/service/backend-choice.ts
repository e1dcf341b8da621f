/**
 * Backend selection for one service frontend, as the userspace datapath needs it
 * per new flow: which backends may take new flows (state, affinity), and which of
 * those a given 5-tuple lands on (Maglev, so every node picks the same backend for
 * the same flow and backend churn moves as few flows as possible).
 *
 * Affinity follows Cilium's `filterPreferredBackends`: when some
 * usable backend is preferred, only the preferred ones are used; when none is (all
 * preferred ones are terminating, quarantined, … or there are none), every usable
 * backend is used.
 */

import { MAGLEV_DEFAULT_TABLE_SIZE, buildMaglevTable, fmix32, isPrime } from './maglev.js';

export type BackendState = 'active' | 'terminating' | 'quarantined' | 'maintenance';

export interface LbBackend {
  /** `ip:port/proto`, e.g. `10.0.1.7:8080/TCP`; also the Maglev identity of the backend. */
  readonly address: string;
  readonly cluster: string;
  readonly state: BackendState;
  /** Set by the service cache from the service's affinity (local or remote side). */
  readonly preferred: boolean;
  /** Relative share of new flows; defaults to 1. Zero means "no new flows" as in Cilium. */
  readonly weight?: number;
}

export interface FlowKey {
  readonly srcIP: string;
  readonly srcPort: number;
  readonly dstIP: string;
  readonly dstPort: number;
  readonly proto: string;
}

export interface ServiceLBOptions {
  /** Maglev table size M, a prime; defaults to Cilium's 16381. */
  readonly tableSize?: number;
  /** Hash seed; must be identical on every node for flows to agree across nodes. */
  readonly seed?: number;
  /**
   * The datapath's view of backend health. Affinity is applied to the healthy usable
   * backends; when none is healthy, to all usable ones (fail open, as Envoy's panic
   * threshold), so a wrong health verdict can slow a service down but never cut it off.
   */
  readonly isHealthy?: ((address: string) => boolean) | undefined;
}

const EMPTY: readonly LbBackend[] = Object.freeze([]);

/**
 * Whether a backend may take new flows. Terminating backends keep serving the flows
 * they already have, but that is the conntrack's business, not selection's.
 */
export function isUsableForNewFlows(b: LbBackend): boolean {
  const w = b.weight ?? 1;
  return b.state === 'active' && Number.isFinite(w) && w > 0;
}

/**
 * The backends new flows are spread over, in canonical (address) order so the Maglev
 * table does not depend on the order the backend list was assembled in. A duplicate
 * address keeps its first occurrence, since Maglev identifies backends by address.
 */
export function selectionSetOf(
  backends: readonly LbBackend[],
  isHealthy?: (address: string) => boolean,
): readonly LbBackend[] {
  return computeSelection(backends, isHealthy).set;
}

interface Selection {
  set: readonly LbBackend[];
  preferredOnly: boolean;
}

function computeSelection(
  backends: readonly LbBackend[],
  isHealthy?: (address: string) => boolean,
): Selection {
  const usable = new Map<string, LbBackend>();
  for (const b of backends) {
    if (!isUsableForNewFlows(b) || usable.has(b.address)) continue;
    usable.set(b.address, b);
  }
  if (usable.size === 0) return { set: EMPTY, preferredOnly: false };
  let pool: LbBackend[] = [...usable.values()];
  if (isHealthy !== undefined) {
    const healthy = pool.filter((b) => isHealthy(b.address));
    // None healthy: fail open over every usable backend.
    if (healthy.length > 0) pool = healthy;
  }
  const anyPreferred = pool.some((b) => b.preferred);
  const set: LbBackend[] = [];
  for (const b of pool) {
    if (!anyPreferred || b.preferred) set.push(b);
  }
  // Plain code-unit order: locale-independent, hence identical on every node.
  set.sort((a, b) => (a.address < b.address ? -1 : a.address > b.address ? 1 : 0));
  return { set: Object.freeze(set), preferredOnly: anyPreferred };
}

function signatureOf(set: readonly LbBackend[]): string {
  // Only what shapes the table: identity, order and weight. Cluster/preferred changes
  // alone keep the table and just swap the backend objects.
  let sig = '';
  for (const b of set) sig += `${b.address}\u0000${b.weight ?? 1}\u0001`;
  return sig;
}

const C1 = 0xcc9e2d51;
const C2 = 0x1b873593;

function mixWord(h: number, k: number): number {
  k = Math.imul(k, C1);
  k = (k << 15) | (k >>> 17);
  k = Math.imul(k, C2);
  h ^= k;
  h = (h << 13) | (h >>> 19);
  return (Math.imul(h, 5) + 0xe6546b64) | 0;
}

function mixString(h: number, s: string): number {
  const len = s.length;
  let i = 0;
  // Two UTF-16 code units per word: no encoding or allocation on the per-flow path.
  for (; i + 1 < len; i += 2) h = mixWord(h, s.charCodeAt(i) | (s.charCodeAt(i + 1) << 16));
  if (i < len) h = mixWord(h, s.charCodeAt(i));
  // The length keeps field boundaries unambiguous ("1.2"+"3" vs "1.23"+"").
  return mixWord(h, len);
}

/**
 * Stable 32-bit hash of a flow's 5-tuple (murmur3-style mixing, allocation-free).
 * Direction-sensitive on purpose: replies are matched by conntrack, not re-selected.
 */
export function hashFlow(flow: FlowKey, seed = 0): number {
  let h = seed | 0;
  h = mixString(h, flow.srcIP);
  h = mixWord(h, flow.srcPort & 0xffff);
  h = mixString(h, flow.dstIP);
  h = mixWord(h, flow.dstPort & 0xffff);
  h = mixString(h, flow.proto);
  return fmix32(h);
}

/**
 * Load balancer for one frontend. Build it once, `update()` it with each new backend
 * list; the Maglev table is rebuilt only when the selection set (addresses, weights)
 * actually changes, so state flips that do not alter the set cost nothing.
 */
export class ServiceLB {
  readonly tableSize: number;
  private readonly seed: number;
  private readonly flowSeed: number;
  private readonly isHealthy: ((address: string) => boolean) | undefined;
  private backends: readonly LbBackend[] = EMPTY;
  private selection: readonly LbBackend[] = EMPTY;
  private preferredOnly = false;
  private table: Int32Array | undefined;
  private signature: string | undefined;
  private builds = 0;

  constructor(backends: readonly LbBackend[], opts: ServiceLBOptions = {}) {
    const m = opts.tableSize ?? MAGLEV_DEFAULT_TABLE_SIZE;
    // Fail at construction rather than on the first backend list that needs a table.
    if (!isPrime(m)) throw new RangeError(`maglev table size must be prime, got ${m}`);
    this.tableSize = m;
    this.seed = (opts.seed ?? 0) >>> 0;
    // Decorrelated from the backend-hash seed so flow slots and backend permutations
    // are not derived from the same hash stream.
    this.flowSeed = fmix32(this.seed ^ 0x5bd1e995);
    this.isHealthy = opts.isHealthy;
    this.update(backends);
  }

  /** Replaces the backend list. Returns true when the lookup table was rebuilt. */
  update(backends: readonly LbBackend[]): boolean {
    this.backends = backends;
    const { set, preferredOnly } = computeSelection(backends, this.isHealthy);
    this.selection = set;
    this.preferredOnly = preferredOnly;
    const sig = signatureOf(set);
    if (sig === this.signature) return false;
    this.signature = sig;
    if (set.length === 0) {
      this.table = undefined;
      return false;
    }
    this.table = buildMaglevTable(
      set.map((b) => ({ id: b.address, weight: b.weight ?? 1 })),
      this.tableSize,
      { seed: this.seed },
    );
    this.builds++;
    return true;
  }

  /** The backend for a new flow, or undefined when no backend can take new flows. */
  select(flow: FlowKey): LbBackend | undefined {
    const table = this.table;
    if (table === undefined) return undefined;
    const idx = table[hashFlow(flow, this.flowSeed) % this.tableSize] ?? -1;
    return idx < 0 ? undefined : this.selection[idx];
  }

  /** Recomputes the selection after a health change. Returns true when the table was rebuilt. */
  refreshHealth(): boolean {
    return this.update(this.backends);
  }

  /**
   * Another backend for a flow whose connection to `failed` did not succeed: one of the
   * selection set, else any other usable backend (affinity and health only order the
   * choice here: one more try beats a failed connection). Undefined when there is none.
   */
  alternative(flow: FlowKey, failed: string): LbBackend | undefined {
    const h = hashFlow(flow, this.flowSeed);
    let pool = this.selection.filter((b) => b.address !== failed);
    if (pool.length === 0) {
      const seen = new Set<string>([failed]);
      pool = [];
      for (const b of this.backends) {
        if (!isUsableForNewFlows(b) || seen.has(b.address)) continue;
        seen.add(b.address);
        pool.push(b);
      }
    }
    return pool.length === 0 ? undefined : pool[h % pool.length];
  }

  /** The backends new flows are currently spread over (frozen, address order). */
  selectionSet(): readonly LbBackend[] {
    return this.selection;
  }

  /** True when affinity narrowed the set to preferred backends. */
  get usingPreferred(): boolean {
    return this.preferredOnly;
  }

  /** How many Maglev tables this instance has built (memoisation check for tests/metrics). */
  get tableBuilds(): number {
    return this.builds;
  }
}
