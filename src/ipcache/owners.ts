import { encodeIPIdentityPair, type IPIdentityPair } from '../keyspace/index.js';

/**
 * Which endpoint owns an IP. Several endpoints may claim one IP for a while (a
 * pod replaced by another that got the same address before the old one was
 * deleted): the first claimant owns it, and when it lets go the next claimant
 * takes over, so the kvstore never flaps to "no entry" while someone holds it.
 */
export class IPOwners {
  /** ip → endpoint keys in claim order. */
  private readonly claims = new Map<string, string[]>();
  /** endpoint key → its entries by ip. */
  private readonly byEndpoint = new Map<string, Map<string, IPIdentityPair>>();

  /**
   * Records the endpoint's current entries; returns the IPs whose winning entry
   * may have changed. Throws, before changing anything, if an entry cannot be encoded:
   * a winner that cannot be written would leave the kvstore behind this table.
   */
  set(endpoint: string, entries: readonly IPIdentityPair[]): string[] {
    for (const e of entries) encodeIPIdentityPair(e);
    const next = new Map(entries.map((e) => [e.IP, e]));
    const prev = this.byEndpoint.get(endpoint) ?? new Map<string, IPIdentityPair>();
    const touched = new Set<string>();
    for (const ip of prev.keys()) {
      if (!next.has(ip)) {
        this.release(ip, endpoint);
        touched.add(ip);
      }
    }
    for (const ip of next.keys()) {
      const list = this.claims.get(ip);
      if (list === undefined) this.claims.set(ip, [endpoint]);
      else if (!list.includes(endpoint)) list.push(endpoint);
      touched.add(ip);
    }
    if (next.size === 0) this.byEndpoint.delete(endpoint);
    else this.byEndpoint.set(endpoint, next);
    return [...touched];
  }

  delete(endpoint: string): string[] {
    return this.set(endpoint, []);
  }

  /**
   * Records the endpoint's entries (none = deleted) and returns, for every IP whose
   * owner may have changed, the entry that should now be published (or none).
   */
  update(
    endpoint: string,
    entries: readonly IPIdentityPair[],
  ): { ip: string; winner: IPIdentityPair | undefined }[] {
    return this.set(endpoint, entries).map((ip) => ({ ip, winner: this.winner(ip) }));
  }

  /** The entry that should be in the kvstore for `ip`, if any. */
  winner(ip: string): IPIdentityPair | undefined {
    const owner = this.claims.get(ip)?.[0];
    return owner === undefined ? undefined : this.byEndpoint.get(owner)?.get(ip);
  }

  private release(ip: string, endpoint: string): void {
    const list = this.claims.get(ip);
    if (list === undefined) return;
    const i = list.indexOf(endpoint);
    if (i >= 0) list.splice(i, 1);
    if (list.length === 0) this.claims.delete(ip);
  }
}
