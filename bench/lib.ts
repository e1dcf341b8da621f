/** Shared helpers for benchmarks: timing, percentiles, the raw etcd baseline, the table and the JSON line. */
import { Range, type Etcd3 } from 'etcd3';

export function percentile(sorted: readonly number[], p: number): number {
  if (sorted.length === 0) return NaN;
  const idx = Math.min(sorted.length - 1, Math.max(0, Math.ceil((p / 100) * sorted.length) - 1));
  return sorted[idx] ?? NaN;
}

export function summarize(samples: number[]): { p50: number; p99: number; mean: number } {
  const s = [...samples].sort((a, b) => a - b);
  const mean = s.reduce((a, b) => a + b, 0) / Math.max(1, s.length);
  return { p50: percentile(s, 50), p99: percentile(s, 99), mean };
}

export type FlagRule = 'positive' | 'positive integer' | 'non-negative integer';

/** The number after `--name`, or `def` when absent; throws unless it satisfies `rule`. */
export function flag(args: readonly string[], name: string, rule: FlagRule, def: number): number {
  const i = args.indexOf(`--${name}`);
  const v = i >= 0 ? Number(args[i + 1]) : def;
  const ok =
    rule === 'positive'
      ? Number.isFinite(v) && v > 0
      : Number.isInteger(v) && (rule === 'positive integer' ? v > 0 : v >= 0);
  if (!ok)
    throw new Error(`--${name}: expected a ${rule === 'positive' ? 'positive number' : rule}`);
  return v;
}

/** The word after `--name`, or undefined when absent. */
export function stringFlag(args: readonly string[], name: string): string | undefined {
  const i = args.indexOf(`--${name}`);
  return i >= 0 ? args[i + 1] : undefined;
}

/** Runs `count` async jobs with at most `inflight` at once. */
export async function pool(
  count: number,
  inflight: number,
  job: (i: number) => Promise<void>,
): Promise<void> {
  let next = 0;
  const workers = Array.from({ length: Math.min(inflight, count) }, async () => {
    while (next < count) {
      const i = next++;
      await job(i);
    }
  });
  await Promise.all(workers);
}

export interface Row {
  readonly metric: string;
  readonly ours: number;
  readonly raw: number;
  readonly unit: string;
  /** Whether bigger is better (throughput) or smaller (latency). */
  readonly higherIsBetter: boolean;
  readonly goal?: string;
}

export function fmt(n: number): string {
  if (!Number.isFinite(n)) return String(n);
  if (Math.abs(n) >= 100) return Math.round(n).toLocaleString('en-US');
  return n.toFixed(2);
}

/** Prints the comparison table and then one machine-readable JSON line. */
export function report(
  name: string,
  rows: readonly Row[],
  extra: Record<string, unknown> = {},
  /** Column names of `ours` and `raw` (the JSON line keeps `ours`/`raw`). */
  columns: readonly [string, string] = ['clustermesh', 'raw etcd3'],
): void {
  const header = ['metric', columns[0], columns[1], 'unit', 'ratio', 'goal'];
  const body = rows.map((r) => [
    r.metric,
    fmt(r.ours),
    fmt(r.raw),
    r.unit,
    `${(r.ours / r.raw).toFixed(2)}x`,
    r.goal ?? '',
  ]);
  const widths = header.map((h, i) => Math.max(h.length, ...body.map((b) => (b[i] ?? '').length)));
  const line = (cells: readonly string[]): string =>
    `| ${cells.map((c, i) => c.padEnd(widths[i] ?? 0)).join(' | ')} |`;
  console.log(line(header));
  console.log(`|${widths.map((w) => '-'.repeat(w + 2)).join('|')}|`);
  for (const b of body) console.log(line(b));
  const json: Record<string, unknown> = { bench: name, ...extra };
  for (const r of rows) {
    json[r.metric] = {
      ours: Number(r.ours.toFixed(3)),
      raw: Number(r.raw.toFixed(3)),
      unit: r.unit,
    };
  }
  console.log(JSON.stringify(json));
}

/**
 * The raw-etcd3 baseline of a list: pages of `pageSize` at the first page's revision, every key
 * and value decoded to a string (and the value parsed with `parse` when given), as any consumer
 * of the list would. Returns the number of keys.
 */
export async function rawPagedList(
  client: Etcd3,
  prefix: string,
  pageSize: number,
  parse?: (value: string) => unknown,
): Promise<number> {
  const end = Range.prefix(prefix).end;
  let start = Buffer.from(prefix);
  let revision: string | undefined;
  let count = 0;
  for (;;) {
    const res = await client.kv.range({
      key: start,
      range_end: end,
      limit: pageSize,
      ...(revision === undefined ? {} : { revision }),
    });
    revision ??= res.header.revision;
    for (const kv of res.kvs) {
      const key = kv.key.toString();
      const value = kv.value.toString();
      parse?.(value);
      if (key.length + value.length > 0) count++;
    }
    const last = res.kvs[res.kvs.length - 1];
    if (!res.more || last === undefined) break;
    start = Buffer.concat([last.key, Buffer.from([0])]);
  }
  return count;
}
