import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  ServiceLB,
  hashFlow,
  isUsableForNewFlows,
  selectionSetOf,
  type BackendState,
  type FlowKey,
  type LbBackend,
} from '../../src/service/backend-choice.js';
import {
  MAGLEV_DEFAULT_TABLE_SIZE,
  MAGLEV_TABLE_SIZES,
  buildMaglevTable,
  fnv1a32,
  isPrime,
  murmur3x86_32,
} from '../../src/service/maglev.js';

// Deterministic PRNG so the statistical assertions cannot flake between runs.
function mulberry32(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) | 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

function randomFlows(count: number, seed: number): FlowKey[] {
  const rnd = mulberry32(seed);
  const flows: FlowKey[] = [];
  for (let i = 0; i < count; i++) {
    const r = Math.floor(rnd() * 0x1000000);
    flows.push({
      srcIP: `10.${r & 255}.${(r >>> 8) & 255}.${(r >>> 16) & 255}`,
      srcPort: 1024 + Math.floor(rnd() * 64511),
      dstIP: '172.20.0.10',
      dstPort: 80,
      proto: 'TCP',
    });
  }
  return flows;
}

function backend(i: number, over: Partial<LbBackend> = {}): LbBackend {
  return {
    address: `10.0.${i >> 8}.${i & 255}:8080/TCP`,
    cluster: 'c1',
    state: 'active',
    preferred: false,
    ...over,
  };
}

function backends(n: number, over: Partial<LbBackend> = {}): LbBackend[] {
  return Array.from({ length: n }, (_, i) => backend(i, over));
}

function shuffled<T>(items: readonly T[], seed: number): T[] {
  const rnd = mulberry32(seed);
  const out = [...items];
  for (let i = out.length - 1; i > 0; i--) {
    const j = Math.floor(rnd() * (i + 1));
    const a = out[i] as T;
    out[i] = out[j] as T;
    out[j] = a;
  }
  return out;
}

function countBy(lb: ServiceLB, flows: readonly FlowKey[]): Map<string, number> {
  const counts = new Map<string, number>();
  for (const f of flows) {
    const b = lb.select(f);
    assert.ok(b !== undefined, 'b !== undefined');
    counts.set(b.address, (counts.get(b.address) ?? 0) + 1);
  }
  return counts;
}

function assign(lb: ServiceLB, flows: readonly FlowKey[]): (string | undefined)[] {
  return flows.map((f) => lb.select(f)?.address);
}

function minOf(runs: number, fn: () => void): number {
  let best = Infinity;
  for (let r = 0; r < runs; r++) {
    const t0 = performance.now();
    fn();
    best = Math.min(best, performance.now() - t0);
  }
  return best;
}

describe('maglev hashes', () => {
  const enc = (s: string): Uint8Array => new TextEncoder().encode(s);

  it('match published test vectors', () => {
    assert.equal(fnv1a32(enc('')), 0x811c9dc5);
    assert.equal(fnv1a32(enc('a')), 0xe40c292c);
    assert.equal(fnv1a32(enc('foobar')), 0xbf9cf968);
    assert.equal(murmur3x86_32(enc('')), 0);
    assert.equal(murmur3x86_32(enc(''), 1), 0x514e28b7);
    assert.equal(murmur3x86_32(enc('hello')), 0x248bfa47);
    assert.equal(murmur3x86_32(enc('The quick brown fox jumps over the lazy dog')), 0x2e4ff723);
  });

  it('isPrime accepts the Cilium table sizes and rejects others', () => {
    for (const m of MAGLEV_TABLE_SIZES) assert.ok(isPrime(m), `${m}`);
    for (const m of [0, 1, 4, 1000, 16383, 65536, 2.5, -7]) assert.ok(!isPrime(m), `${m}`);
  });
});

describe('buildMaglevTable', () => {
  it('rejects non-prime sizes and invalid weights', () => {
    assert.throws(() => buildMaglevTable([{ id: 'a' }], 1000), RangeError);
    assert.throws(() => buildMaglevTable([{ id: 'a' }], 1), RangeError);
    assert.throws(() => buildMaglevTable([{ id: 'a', weight: -1 }], 251), RangeError);
    assert.throws(() => buildMaglevTable([{ id: 'a', weight: NaN }], 251), RangeError);
  });

  it('is all -1 without backends or without positive weights', () => {
    assert.ok(
      buildMaglevTable([], 251).every((x) => x === -1),
      'buildMaglevTable([], 251).every((x) => x === -1)',
    );
    assert.ok(
      buildMaglevTable([{ id: 'a', weight: 0 }], 251).every((x) => x === -1),
      "buildMaglevTable([{ id: 'a', weight: 0 }], 251).every((x) => x === -1)",
    );
  });

  it('fills every slot, each backend getting floor or ceil of M/N', () => {
    for (const m of [251, 1021, 4093, 16381, 65521]) {
      for (const n of [1, 3, 5, 7, 10, 100]) {
        const t = buildMaglevTable(
          Array.from({ length: n }, (_, i) => ({ id: `b${i}` })),
          m,
        );
        const counts = new Array<number>(n).fill(0);
        for (const x of t) {
          assert.ok(x >= 0 && x < n, 'x >= 0 && x < n');
          counts[x] = (counts[x] ?? 0) + 1;
        }
        assert.ok(
          Math.max(...counts) - Math.min(...counts) <= 1,
          `m=${m} n=${n} ${counts.join(',')}`,
        );
      }
    }
  });

  it('is deterministic and seed-dependent', () => {
    const bs = Array.from({ length: 10 }, (_, i) => ({ id: `b${i}` }));
    assert.deepEqual(buildMaglevTable(bs, 4093), buildMaglevTable(bs, 4093));
    assert.notDeepEqual(
      buildMaglevTable(bs, 4093, { seed: 1 }),
      buildMaglevTable(bs, 4093, { seed: 2 }),
    );
  });

  it('gives weighted backends proportional slots; weight 0 gets none', () => {
    const t = buildMaglevTable(
      [
        { id: 'a', weight: 1 },
        { id: 'b', weight: 2 },
        { id: 'c', weight: 3 },
        { id: 'z', weight: 0 },
      ],
      16381,
    );
    const counts = [0, 0, 0, 0];
    for (const x of t) counts[x] = (counts[x] ?? 0) + 1;
    const [a = 0, b = 0, c = 0, z = 0] = counts;
    assert.equal(z, 0);
    for (const [got, share] of [
      [a, 1 / 6],
      [b, 2 / 6],
      [c, 3 / 6],
    ] as const) {
      assert.ok(Math.abs(got - 16381 * share) <= 2, counts.join(','));
    }
  });

  it('removing one of N backends moves few slots owned by the others', (t) => {
    const ids = Array.from({ length: 10 }, (_, i) => `10.0.0.${i}:80/TCP`);
    const before = buildMaglevTable(
      ids.map((id) => ({ id })),
      MAGLEV_DEFAULT_TABLE_SIZE,
    );
    const rest = ids.filter((_, i) => i !== 4);
    const after = buildMaglevTable(
      rest.map((id) => ({ id })),
      MAGLEV_DEFAULT_TABLE_SIZE,
    );
    let others = 0;
    let moved = 0;
    for (let j = 0; j < before.length; j++) {
      const was = ids[before[j] ?? -1];
      const now = rest[after[j] ?? -1];
      assert.ok(now !== undefined, 'now !== undefined');
      if (was === ids[4]) continue;
      others++;
      if (was !== now) moved++;
    }
    t.diagnostic(
      `table slots of surviving backends remapped: ${((100 * moved) / others).toFixed(2)}%`,
    );
    assert.ok(moved / others < 0.02, 'moved / others < 0.02');
  });
});

describe('ServiceLB selection', () => {
  it('maps the same flow to the same backend, regardless of backend list order', () => {
    const bs = backends(7);
    const lb = new ServiceLB(bs);
    const other = new ServiceLB(shuffled(bs, 42));
    const flows = randomFlows(1000, 1);
    const first = assign(lb, flows);
    for (let round = 0; round < 5; round++) assert.deepEqual(assign(lb, flows), first);
    assert.deepEqual(assign(other, flows), first);
    // Fresh, structurally equal keys hash the same (no identity-based caching).
    assert.deepEqual(
      assign(
        lb,
        flows.map((f) => ({ ...f })),
      ),
      first,
    );
    for (const f of flows) assert.equal(hashFlow(f), hashFlow({ ...f }));
  });

  for (const n of [3, 5, 10]) {
    it(`spreads 100k flows evenly over ${n} backends`, (t) => {
      const lb = new ServiceLB(backends(n));
      const flows = randomFlows(100_000, 7 + n);
      const counts = countBy(lb, flows);
      assert.equal(counts.size, n);
      const expected = flows.length / n;
      let maxDev = 0;
      let chi2 = 0;
      for (const c of counts.values()) {
        maxDev = Math.max(maxDev, Math.abs(c - expected) / expected);
        chi2 += (c - expected) ** 2 / expected;
      }
      // chi-square critical values at p = 0.001 for n-1 degrees of freedom.
      const critical: Record<number, number> = { 3: 13.82, 5: 18.47, 10: 27.88 };
      t.diagnostic(
        `n=${n}: max deviation ${(100 * maxDev).toFixed(2)}% of ${(100 / n).toFixed(0)}% share, chi2=${chi2.toFixed(2)}`,
      );
      assert.ok(maxDev < 0.05, `max relative deviation ${maxDev}`);
      assert.ok(chi2 < (critical[n] ?? 0), `chi2 ${chi2}`);
    });
  }

  it('removing 1 of 10 backends remaps its flows plus < 2% of the others; re-adding restores', (t) => {
    const bs = backends(10);
    const lb = new ServiceLB(bs);
    const flows = randomFlows(100_000, 99);
    const before = assign(lb, flows);
    const removed = bs[3]?.address;

    assert.ok(
      lb.update(bs.filter((b) => b.address !== removed)),
      'lb.update(bs.filter((b) => b.address !== removed))',
    );
    const after = assign(lb, flows);
    let others = 0;
    let movedOthers = 0;
    let onRemoved = 0;
    for (let i = 0; i < flows.length; i++) {
      assert.notEqual(after[i], removed);
      if (before[i] === removed) {
        onRemoved++;
        continue;
      }
      others++;
      if (after[i] !== before[i]) movedOthers++;
    }
    t.diagnostic(
      `removed backend had ${((100 * onRemoved) / flows.length).toFixed(2)}% of flows; ` +
        `${((100 * movedOthers) / others).toFixed(2)}% of other flows remapped`,
    );
    assert.ok(onRemoved > 0, 'onRemoved > 0');
    assert.ok(movedOthers / others < 0.02, 'movedOthers / others < 0.02');

    assert.ok(lb.update(shuffled(bs, 5)), 'lb.update(shuffled(bs, 5))');
    assert.deepEqual(assign(lb, flows), before);
  });

  it('local affinity: only preferred backends while any is usable', () => {
    const local = backends(3, { cluster: 'c1', preferred: true });
    const remote = [10, 11, 12].map((i) => backend(i, { cluster: 'c2' }));
    const lb = new ServiceLB([...local, ...remote]);
    assert.ok(lb.usingPreferred, 'lb.usingPreferred');
    assert.deepEqual(
      lb.selectionSet().map((b) => b.address),
      local.map((b) => b.address),
    );
    const flows = randomFlows(5000, 3);
    for (const f of flows) assert.equal(lb.select(f)?.cluster, 'c1');

    // One local left active: it takes everything.
    const oneLeft: LbBackend[] = [
      { ...local[0], state: 'terminating' } as LbBackend,
      { ...local[1], state: 'quarantined' } as LbBackend,
      local[2] as LbBackend,
      ...remote,
    ];
    lb.update(oneLeft);
    for (const f of flows) assert.equal(lb.select(f)?.address, local[2]?.address);

    // No usable preferred backend: fall back to every usable backend.
    for (const state of ['terminating', 'quarantined', 'maintenance'] as const) {
      lb.update([...local.map((b) => ({ ...b, state })), ...remote]);
      assert.ok(!lb.usingPreferred, '!lb.usingPreferred');
      const counts = countBy(lb, flows);
      assert.deepEqual(
        [...counts.keys()].sort(),
        remote.map((b) => b.address),
      );
    }
  });

  it('remote affinity and no affinity', () => {
    const local = backends(2, { cluster: 'c1' });
    const remote = [20, 21].map((i) => backend(i, { cluster: 'c2', preferred: true }));
    const flows = randomFlows(2000, 4);
    const lb = new ServiceLB([...local, ...remote]);
    for (const f of flows) assert.equal(lb.select(f)?.cluster, 'c2');

    // Remote cluster gone (its backends removed): local ones serve.
    lb.update(local);
    assert.equal(countBy(lb, flows).size, 2);
    for (const f of flows) assert.equal(lb.select(f)?.cluster, 'c1');

    // No preferred anywhere: every usable backend, both clusters.
    const none = [...local, ...remote.map((b) => ({ ...b, preferred: false }))];
    assert.equal(new ServiceLB(none).selectionSet().length, 4);
    assert.equal(new Set(assign(new ServiceLB(none), flows)).size, 4);
  });

  it('never picks non-active or zero-weight backends for new flows', () => {
    const states: BackendState[] = ['active', 'terminating', 'quarantined', 'maintenance'];
    const bs = Array.from({ length: 20 }, (_, i) =>
      backend(i, { state: states[i % 4] ?? 'active', preferred: i % 8 === 1 }),
    );
    bs.push(backend(100, { weight: 0 }));
    const lb = new ServiceLB(bs);
    const seen = countBy(lb, randomFlows(20_000, 5));
    assert.equal(seen.size, 5);
    for (const addr of seen.keys()) {
      const b = bs.find((x) => x.address === addr);
      assert.ok(
        b !== undefined && isUsableForNewFlows(b),
        'b !== undefined && isUsableForNewFlows(b)',
      );
    }
    // Preferred backends here are all terminating, so they must not pin the set.
    assert.ok(!lb.usingPreferred, '!lb.usingPreferred');
  });

  it('returns undefined when empty or nothing is usable', () => {
    const flow: FlowKey = {
      srcIP: '10.1.1.1',
      srcPort: 40000,
      dstIP: '10.96.0.10',
      dstPort: 53,
      proto: 'UDP',
    };
    const empty = new ServiceLB([]);
    assert.equal(empty.select(flow), undefined);
    assert.deepEqual(empty.selectionSet(), []);
    assert.equal(empty.tableBuilds, 0);

    const inactive = new ServiceLB(
      (['terminating', 'quarantined', 'maintenance'] as const).map((state, i) =>
        backend(i, { state, preferred: i === 0 }),
      ),
    );
    assert.equal(inactive.select(flow), undefined);
    assert.equal(inactive.selectionSet().length, 0);

    // Going from usable to empty must drop the old table.
    const lb = new ServiceLB(backends(3));
    assert.ok(lb.select(flow) !== undefined, 'lb.select(flow) !== undefined');
    lb.update(backends(3, { state: 'terminating' }));
    assert.equal(lb.select(flow), undefined);
    lb.update(backends(3));
    assert.ok(lb.select(flow) !== undefined, 'lb.select(flow) !== undefined');
  });

  it('splits flows roughly in proportion to weights', (t) => {
    const bs = [
      backend(0, { weight: 100 }),
      backend(1, { weight: 200 }),
      backend(2, { weight: 300 }),
    ];
    const lb = new ServiceLB(bs);
    const flows = randomFlows(100_000, 11);
    const counts = countBy(lb, flows);
    const shares = bs.map((b) => (counts.get(b.address) ?? 0) / flows.length);
    t.diagnostic(`weights 1:2:3 -> shares ${shares.map((s) => s.toFixed(4)).join(' ')}`);
    [1 / 6, 2 / 6, 3 / 6].forEach((want, i) => {
      assert.ok(Math.abs((shares[i] ?? 0) - want) / want < 0.05, shares.join(','));
    });
  });

  it('rebuilds the table only when the selection set changes', () => {
    const bs = backends(5);
    const lb = new ServiceLB(bs);
    assert.equal(lb.tableBuilds, 1);

    // Same set in another order, plus a non-usable extra: nothing to rebuild.
    assert.equal(lb.update([...shuffled(bs, 9), backend(50, { state: 'terminating' })]), false);
    // A cluster label change keeps the table but exposes the new objects.
    assert.equal(lb.update(bs.map((b) => ({ ...b, cluster: 'c9' }))), false);
    assert.ok(
      lb.selectionSet().every((b) => b.cluster === 'c9'),
      "lb.selectionSet().every((b) => b.cluster === 'c9')",
    );
    assert.equal(lb.tableBuilds, 1);

    assert.equal(lb.update(bs.slice(1)), true);
    assert.equal(lb.update([...bs.slice(1), backend(0, { weight: 3 })]), true);
    assert.equal(lb.tableBuilds, 3);
    assert.ok(Object.isFrozen(lb.selectionSet()), 'Object.isFrozen(lb.selectionSet())');
    assert.deepEqual(
      selectionSetOf(shuffled(bs, 1)).map((b) => b.address),
      bs.map((b) => b.address).sort(),
    );
  });

  it('rejects a non-prime table size and honours small ones', () => {
    assert.throws(() => new ServiceLB(backends(2), { tableSize: 1000 }), RangeError);
    const lb = new ServiceLB(backends(2), { tableSize: 251 });
    assert.equal(lb.tableSize, 251);
    assert.equal(countBy(lb, randomFlows(1000, 2)).size, 2);
  });
});

describe('ServiceLB performance', () => {
  it('builds a 1000-backend table (M=16381) fast and selects in O(1)', (t) => {
    const bs = backends(1000);
    const addrs = bs.map((b) => ({ id: b.address }));
    buildMaglevTable(addrs, MAGLEV_DEFAULT_TABLE_SIZE); // warm-up (JIT)
    const buildMs = minOf(5, () => buildMaglevTable(addrs, MAGLEV_DEFAULT_TABLE_SIZE));

    const lb = new ServiceLB(bs);
    const flows = randomFlows(100_000, 13);
    let sink = 0;
    const selectAll = (): void => {
      for (const f of flows) sink += lb.select(f)?.address.length ?? 0;
    };
    selectAll();
    const selectMs = minOf(3, selectAll);
    assert.ok(sink > 0, 'sink > 0');

    // Same work against a 10-backend table: O(1) means no growth with backend count.
    const small = new ServiceLB(backends(10));
    const selectSmallMs = minOf(3, () => {
      for (const f of flows) sink += small.select(f)?.address.length ?? 0;
    });
    t.diagnostic(
      `build 1000 backends M=16381: ${buildMs.toFixed(2)} ms; 100k selects: ` +
        `${selectMs.toFixed(2)} ms (1000 backends), ${selectSmallMs.toFixed(2)} ms (10 backends)`,
    );
    assert.ok(buildMs < 50, `build took ${buildMs} ms`);
    assert.ok(selectMs < 200, `100k selects took ${selectMs} ms`);
  });
});

describe('ServiceLB selection with backend health', () => {
  const local = [
    { address: '10.1.0.1:80/TCP', cluster: 'c1', state: 'active' as const, preferred: true },
    { address: '10.1.0.2:80/TCP', cluster: 'c1', state: 'active' as const, preferred: true },
  ];
  const remote = [
    { address: '10.2.0.1:80/TCP', cluster: 'c2', state: 'active' as const, preferred: false },
    { address: '10.2.0.2:80/TCP', cluster: 'c2', state: 'active' as const, preferred: false },
  ];
  const all: LbBackend[] = [...local, ...remote];
  const addresses = (set: readonly LbBackend[]): string[] => set.map((b) => b.address);
  const flows = randomFlows(500, 7);

  it('applies affinity to the healthy backends, and fails open when none is healthy', () => {
    const down = new Set<string>();
    const lb = new ServiceLB(all, { isHealthy: (a) => !down.has(a) });
    assert.deepEqual(addresses(lb.selectionSet()), addresses(local));

    down.add('10.1.0.1:80/TCP');
    assert.equal(lb.refreshHealth(), true);
    assert.deepEqual(addresses(lb.selectionSet()), ['10.1.0.2:80/TCP']);
    assert.ok(lb.usingPreferred, 'lb.usingPreferred');

    down.add('10.1.0.2:80/TCP');
    lb.refreshHealth();
    assert.deepEqual(addresses(lb.selectionSet()), addresses(remote), 'other healthy ones');
    assert.equal(lb.usingPreferred, false);

    for (const b of all) down.add(b.address);
    lb.refreshHealth();
    assert.deepEqual(addresses(lb.selectionSet()), addresses(local), 'fail open: affinity again');
    for (const f of flows) assert.ok(lb.select(f) !== undefined, 'lb.select(f) !== undefined');

    down.clear();
    lb.refreshHealth();
    assert.deepEqual(addresses(lb.selectionSet()), addresses(local));
    assert.deepEqual(
      addresses(selectionSetOf(all, (a) => a.startsWith('10.2.'))),
      addresses(remote),
    );
  });

  it('health never revives a backend that cannot take new flows', () => {
    const lb = new ServiceLB(
      [{ ...remote[0], state: 'terminating' } as LbBackend, remote[1] as LbBackend],
      { isHealthy: (a) => a === remote[0]?.address },
    );
    // The only healthy one is terminating: fail open over the usable ones.
    assert.deepEqual(addresses(lb.selectionSet()), [remote[1]?.address]);
  });

  it('moves only the flows of the unhealthy backend (Maglev)', () => {
    const down = new Set<string>();
    const lb = new ServiceLB(
      remote.concat(local).map((b) => ({ ...b, preferred: false })),
      {
        isHealthy: (a) => !down.has(a),
      },
    );
    const before = assign(lb, flows);
    down.add('10.2.0.1:80/TCP');
    lb.refreshHealth();
    const after = assign(lb, flows);
    let moved = 0;
    before.forEach((b, i) => {
      if (b !== '10.2.0.1:80/TCP' && after[i] !== b) moved++;
    });
    assert.ok(moved < flows.length * 0.05, `${moved} flows of healthy backends moved`);
    assert.ok(!after.includes('10.2.0.1:80/TCP'), "!after.includes('10.2.0.1:80/TCP')");
  });

  it('alternative: another backend of the selection, else any other usable one', () => {
    const lb = new ServiceLB(all);
    const f = flows[0] as FlowKey;
    const picked = lb.select(f)?.address ?? '';
    const alt = lb.alternative(f, picked);
    assert.ok(
      alt !== undefined && alt.address !== picked && alt.preferred,
      'alt !== undefined && alt.address !== picked && alt.preferred',
    );
    const single = new ServiceLB([local[0] as LbBackend, remote[0] as LbBackend]);
    assert.equal(single.alternative(f, local[0]?.address ?? '')?.address, remote[0]?.address);
    assert.equal(
      new ServiceLB([local[0] as LbBackend]).alternative(f, local[0]?.address ?? ''),
      undefined,
    );
  });
});
