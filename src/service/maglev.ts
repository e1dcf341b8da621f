/**
 * Maglev consistent hashing (Eisenbud et al., NSDI 2016), as Cilium uses it for
 * its load-balancer lookup tables (`pkg/maglev`).
 *
 * Every backend derives a permutation of the M table slots from two independent
 * hashes of its id (offset and skip); backends then take turns claiming their
 * next still-free slot until the table is full. Because each backend's
 * preferences depend only on its own id, removing or adding one backend mostly
 * shifts the slots that backend owned, which keeps existing flows on their
 * backend (minimal disruption), while the round-robin fill keeps the shares even.
 */

/** Cilium's default `bpf-lb-maglev-table-size`. */
export const MAGLEV_DEFAULT_TABLE_SIZE = 16381;

/** The table sizes Cilium accepts; any prime works here, these are the tested ones. */
export const MAGLEV_TABLE_SIZES: readonly number[] = Object.freeze([
  251, 509, 1021, 2039, 4093, 8191, 16381, 32749, 65521, 131071,
]);

export interface MaglevBackend {
  readonly id: string;
  /**
   * Relative share of table slots; defaults to 1. Weight 0 gets no slots, which
   * mirrors Cilium where a zero-weight backend takes no new flows.
   */
  readonly weight?: number;
}

export interface MaglevOptions {
  /**
   * Seed for the backend hashes. Every node must use the same seed, otherwise the
   * same flow lands on different backends depending on which node sees it.
   */
  readonly seed?: number;
}

// Keeps tables within a sane memory budget: a 16M-entry Int32Array is 64 MiB.
const MAX_TABLE_SIZE = 1 << 24;

const primeCache = new Set<number>();

export function isPrime(n: number): boolean {
  if (!Number.isInteger(n) || n < 2) return false;
  if (primeCache.has(n)) return true;
  if (n % 2 === 0) return n === 2;
  for (let d = 3; d * d <= n; d += 2) {
    if (n % d === 0) return false;
  }
  primeCache.add(n);
  return true;
}

const utf8 = new TextEncoder();

/** FNV-1a, 32-bit. */
export function fnv1a32(data: Uint8Array, seed = 0): number {
  let h = (0x811c9dc5 ^ seed) >>> 0;
  for (const byte of data) {
    h ^= byte;
    h = Math.imul(h, 0x01000193);
  }
  return h >>> 0;
}

/** MurmurHash3 x86 32-bit finaliser: full avalanche of a 32-bit value. */
export function fmix32(h: number): number {
  h ^= h >>> 16;
  h = Math.imul(h, 0x85ebca6b);
  h ^= h >>> 13;
  h = Math.imul(h, 0xc2b2ae35);
  h ^= h >>> 16;
  return h >>> 0;
}

/** MurmurHash3 x86 32-bit over bytes (little-endian blocks, as the reference). */
export function murmur3x86_32(data: Uint8Array, seed = 0): number {
  const c1 = 0xcc9e2d51;
  const c2 = 0x1b873593;
  const len = data.length;
  const blocks = len & ~3;
  let h = seed >>> 0;
  let i = 0;
  for (; i < blocks; i += 4) {
    let k =
      (data[i] ?? 0) |
      ((data[i + 1] ?? 0) << 8) |
      ((data[i + 2] ?? 0) << 16) |
      ((data[i + 3] ?? 0) << 24);
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
    h = (h << 13) | (h >>> 19);
    h = (Math.imul(h, 5) + 0xe6546b64) | 0;
  }
  const tail = len & 3;
  if (tail > 0) {
    let k = data[i] ?? 0;
    if (tail > 1) k |= (data[i + 1] ?? 0) << 8;
    if (tail > 2) k |= (data[i + 2] ?? 0) << 16;
    k = Math.imul(k, c1);
    k = (k << 15) | (k >>> 17);
    k = Math.imul(k, c2);
    h ^= k;
  }
  h ^= len;
  return fmix32(h);
}

/**
 * Builds the Maglev lookup table: entry j is the index (into `backends`) of the
 * backend owning slot j, or -1 everywhere when no backend can take slots.
 *
 * The result depends on the order of `backends` (the fill is round-robin in that
 * order), so callers that want identical tables across nodes must pass a
 * canonical order, e.g. sorted by id.
 */
export function buildMaglevTable(
  backends: readonly MaglevBackend[],
  m: number,
  opts: MaglevOptions = {},
): Int32Array {
  if (!isPrime(m) || m > MAX_TABLE_SIZE) {
    // A non-prime M lets some skips share a factor with M, so those permutations
    // would cycle through only part of the table and the fill could never finish.
    throw new RangeError(`maglev table size must be a prime <= ${MAX_TABLE_SIZE}, got ${m}`);
  }
  const seed = (opts.seed ?? 0) >>> 0;
  const n = backends.length;
  const table = new Int32Array(m).fill(-1);

  const pos = new Int32Array(n);
  const skip = new Int32Array(n);
  const weight = new Float64Array(n);
  let maxWeight = 0;
  for (let i = 0; i < n; i++) {
    const b = backends[i];
    if (b === undefined) continue;
    const w = b.weight ?? 1;
    if (!Number.isFinite(w) || w < 0) {
      throw new RangeError(`maglev backend ${b.id}: weight must be a finite number >= 0, got ${w}`);
    }
    weight[i] = w;
    if (w > maxWeight) maxWeight = w;
    const bytes = utf8.encode(b.id);
    // Two unrelated hash families so offset and skip are independent; otherwise
    // backends with colliding offsets would also walk the table in lockstep.
    pos[i] = fmix32(fnv1a32(bytes, seed)) % m;
    skip[i] = m === 2 ? 1 : (murmur3x86_32(bytes, seed ^ 0x9e3779b9) % (m - 1)) + 1;
  }
  if (maxWeight === 0) return table;

  // Weighted round-robin: each round a backend earns credit equal to its weight
  // and claims a slot per `maxWeight` of credit. With equal weights this is
  // exactly the paper's one-slot-per-turn fill.
  const credit = new Float64Array(n);
  let filled = 0;
  for (;;) {
    for (let i = 0; i < n; i++) {
      const w = weight[i] ?? 0;
      if (w === 0) continue;
      const c = (credit[i] ?? 0) + w;
      if (c < maxWeight) {
        credit[i] = c;
        continue;
      }
      credit[i] = c - maxWeight;
      const s = skip[i] ?? 1;
      let p = pos[i] ?? 0;
      while ((table[p] ?? -1) >= 0) {
        p += s;
        if (p >= m) p -= m;
      }
      table[p] = i;
      p += s;
      if (p >= m) p -= m;
      pos[i] = p;
      if (++filled === m) return table;
    }
  }
}
