export interface IPCacheEntry {
  /** `ip/32` or `ip/128`, or a prefix. */
  readonly cidr: string;
  readonly identity: number;
  readonly hostIP: string;
  readonly encryptKey: number;
  readonly cluster: string;
  readonly k8sNamespace?: string | undefined;
  readonly k8sPodName?: string | undefined;
}

export type IPCacheListener = (event: 'upsert' | 'delete', entry: IPCacheEntry) => void;

/** Where an entry came from; the local cluster wins over remote ones for the same IP. */
export type IPCacheSource = 'local' | 'clustermesh';

interface Claim {
  readonly source: IPCacheSource;
  readonly entry: IPCacheEntry;
}

/**
 * IP → identity for every endpoint of every cluster. Several sources may claim one
 * IP (a local pod and a misbehaving remote, or two remotes with overlapping
 * CIDRs): local claims win, then the first remote claimant; when the winner goes
 * the next claim takes over.
 */
export class IPCache {
  private readonly claims = new Map<string, Claim[]>();
  private readonly listeners = new Set<IPCacheListener>();

  upsert(source: IPCacheSource, entry: IPCacheEntry): void {
    const list = this.claims.get(entry.cidr) ?? [];
    const before = winner(list);
    const i = list.findIndex((c) => c.source === source && c.entry.cluster === entry.cluster);
    if (i >= 0) list[i] = { source, entry };
    else list.push({ source, entry });
    this.claims.set(entry.cidr, list);
    this.emitChange(before, winner(list));
  }

  delete(source: IPCacheSource, cluster: string, cidr: string): void {
    const list = this.claims.get(cidr);
    if (list === undefined) return;
    const before = winner(list);
    const i = list.findIndex((c) => c.source === source && c.entry.cluster === cluster);
    if (i < 0) return;
    list.splice(i, 1);
    if (list.length === 0) this.claims.delete(cidr);
    this.emitChange(before, winner(list));
  }

  lookup(cidr: string): IPCacheEntry | undefined {
    const list = this.claims.get(cidr);
    return list === undefined ? undefined : winner(list);
  }

  list(): IPCacheEntry[] {
    const out: IPCacheEntry[] = [];
    for (const list of this.claims.values()) {
      const w = winner(list);
      if (w !== undefined) out.push(w);
    }
    return out.sort((a, b) => compareCidr(a.cidr, b.cidr));
  }

  countForCluster(cluster: string): number {
    let n = 0;
    for (const e of this.list()) if (e.cluster === cluster) n++;
    return n;
  }

  onChange(listener: IPCacheListener): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  private emitChange(before: IPCacheEntry | undefined, after: IPCacheEntry | undefined): void {
    if (before === after) return;
    if (after === undefined) {
      if (before !== undefined) for (const l of this.listeners) l('delete', before);
      return;
    }
    for (const l of this.listeners) l('upsert', after);
  }
}

function winner(list: readonly Claim[]): IPCacheEntry | undefined {
  return (list.find((c) => c.source === 'local') ?? list[0])?.entry;
}

/** Orders IPv4 numerically, then IPv6 textually. */
function compareCidr(a: string, b: string): number {
  const na = v4Number(a);
  const nb = v4Number(b);
  if (na !== undefined && nb !== undefined) return na - nb;
  if (na !== undefined) return -1;
  if (nb !== undefined) return 1;
  return a < b ? -1 : a > b ? 1 : 0;
}

function v4Number(cidr: string): number | undefined {
  const m = /^(\d+)\.(\d+)\.(\d+)\.(\d+)\//.exec(cidr);
  if (m === null) return undefined;
  return ((Number(m[1]) * 256 + Number(m[2])) * 256 + Number(m[3])) * 256 + Number(m[4]);
}
