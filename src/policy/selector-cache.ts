/**
 * The selector cache: every distinct selector of every installed policy, with the set
 * of identities it currently matches. A new identity is tested once against each
 * selector; a new selector once against each identity; so a change touches only the
 * selectors it affects, and callers learn exactly which selectors gained or lost whom.
 */
import { LabelSet, SOURCE_RESERVED, prefixContains, requirementMatches } from './labels.js';
import type { PeerSelector } from './rules.js';

export function selectorMatches(sel: PeerSelector, labels: LabelSet): boolean {
  if (sel.kind === 'labels') {
    for (const r of sel.requirements) if (!requirementMatches(r, labels)) return false;
    return true;
  }
  // A CIDR selector only ever matches world / CIDR identities: pod and node addresses
  // resolve to their own identities, which carry no `cidr:` labels.
  let inside: boolean;
  if (sel.prefix.prefixLen === 0) {
    // The zero-length prefix is the world label itself.
    const family = sel.prefix.bits === 32 ? 'world-ipv4' : 'world-ipv6';
    // An identity with addresses matches by family; a bare world identity by its label.
    inside =
      labels.prefixes.length > 0
        ? labels.prefixes.some((p) => p.bits === sel.prefix.bits)
        : labels.has(SOURCE_RESERVED, 'world') || labels.has(SOURCE_RESERVED, family);
  } else {
    inside = labels.prefixes.some((p) => prefixContains(sel.prefix, p));
  }
  if (!inside) return false;
  return !sel.except.some((e) => labels.prefixes.some((p) => prefixContains(e, p)));
}

export interface CachedSelector {
  readonly selector: PeerSelector;
  readonly ids: Set<number>;
  /** No requirements at all: matches every identity, known or not. */
  readonly wildcard: boolean;
  refs: number;
}

export class SelectorCache {
  private readonly selectors = new Map<string, CachedSelector>();

  constructor(private readonly identities: ReadonlyMap<number, LabelSet>) {}

  get(key: string): CachedSelector | undefined {
    return this.selectors.get(key);
  }

  get size(): number {
    return this.selectors.size;
  }

  /** Takes a reference on a selector, computing its matches when it is new. */
  acquire(sel: PeerSelector): CachedSelector {
    let c = this.selectors.get(sel.key);
    if (c === undefined) {
      const ids = new Set<number>();
      for (const [id, labels] of this.identities) if (selectorMatches(sel, labels)) ids.add(id);
      c = {
        selector: sel,
        ids,
        wildcard: sel.kind === 'labels' && sel.requirements.length === 0,
        refs: 0,
      };
      this.selectors.set(sel.key, c);
    }
    c.refs++;
    return c;
  }

  release(key: string): void {
    const c = this.selectors.get(key);
    if (c === undefined) return;
    if (--c.refs <= 0) this.selectors.delete(key);
  }

  /** Records a new identity (already in the identity map); returns the selectors it joined. */
  identityAdded(id: number, labels: LabelSet): string[] {
    const joined: string[] = [];
    for (const [key, c] of this.selectors) {
      if (selectorMatches(c.selector, labels)) {
        c.ids.add(id);
        joined.push(key);
      }
    }
    return joined;
  }

  /** Forgets an identity; returns the selectors it left. */
  identityRemoved(id: number): string[] {
    const left: string[] = [];
    for (const [key, c] of this.selectors) if (c.ids.delete(id)) left.push(key);
    return left;
  }
}
