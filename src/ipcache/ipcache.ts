/** The host prefix of one address: `ip/32`, or `ip/128` for IPv6 (the ipcache's key form). */
export function hostCidr(ip: string): string {
  return ip.includes(':') ? `${ip}/128` : `${ip}/32`;
}

export interface IPCacheEntry {
  /** `ip/32` or `ip/128`, or a prefix. */
  readonly cidr: string;
  readonly identity: number;
  readonly hostIP: string;
  readonly encryptKey: number;
  readonly cluster: string;
  readonly k8sNamespace?: string | undefined;
  readonly k8sPodName?: string | undefined;
  readonly source: IPCacheSource;
}

export type IPCacheListener = (event: 'upsert' | 'delete', entry: IPCacheEntry) => void;

/** Where an entry came from; the local cluster wins over remote ones for the same IP. */
export type IPCacheSource = 'local' | 'clustermesh';

/** Entries are stored as given (not copied): one object per endpoint. */
type Claim = IPCacheEntry;

/**
 * IP → identity for every endpoint of every cluster. Several sources may claim one
 * IP (a local pod and a misbehaving remote, or two remotes with overlapping
 * CIDRs): local claims win, then the first remote claimant; when the winner goes
 * the next claim takes over. Almost every IP has exactly one claim, so it is
 * stored bare; an array appears only for contested IPs (memory per remote endpoint).
 */
export class IPCache {
  private readonly claims = new Map<string, Claim | Claim[]>();
  private readonly listeners = new Set<IPCacheListener>();

  upsert(entry: IPCacheEntry): void {
    const claim = entry;
    const source = entry.source;
    const cur = this.claims.get(entry.cidr);
    if (cur === undefined) {
      this.claims.set(entry.cidr, claim);
      this.emitChange(undefined, claim);
      return;
    }
    const list = Array.isArray(cur) ? cur : [cur];
    const before = winner(list);
    const i = list.findIndex((c) => c.source === source && c.cluster === entry.cluster);
    if (i >= 0) list[i] = claim;
    else list.push(claim);
    this.claims.set(entry.cidr, list.length === 1 ? claim : list);
    this.emitChange(before, winner(list));
  }

  delete(source: IPCacheSource, cluster: string, cidr: string): void {
    const cur = this.claims.get(cidr);
    if (cur === undefined) return;
    const list = Array.isArray(cur) ? cur : [cur];
    const before = winner(list);
    const i = list.findIndex((c) => c.source === source && c.cluster === cluster);
    if (i < 0) return;
    list.splice(i, 1);
    const only = list[0];
    if (only === undefined) this.claims.delete(cidr);
    else this.claims.set(cidr, list.length === 1 ? only : list);
    this.emitChange(before, winner(list));
  }

  lookup(cidr: string): IPCacheEntry | undefined {
    const cur = this.claims.get(cidr);
    if (cur === undefined) return undefined;
    return Array.isArray(cur) ? winner(cur) : cur;
  }

  list(): IPCacheEntry[] {
    const out: IPCacheEntry[] = [];
    for (const cur of this.claims.values()) {
      const w = Array.isArray(cur) ? winner(cur) : cur;
      if (w !== undefined) out.push(w);
    }
    return out.sort((a, b) => compareCidr(a.cidr, b.cidr));
  }

  get size(): number {
    return this.claims.size;
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

function winner(list: readonly Claim[]): Claim | undefined {
  return list.find((c) => c.source === 'local') ?? list[0];
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
