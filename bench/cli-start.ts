/**
 * CLI start time: whole-process wall time of `clustermesh --version`, of a view command (an
 * agent view against a closed port, so it fails fast after loading what a view loads) and of
 * `--version` run from the TypeScript sources, each paired run by run with `node -e 0` on the
 * same machine; the ratio is the median of the per-pair ratios, so drift in the machine's
 * speed cancels out. `npm run bench -- cli-start [--runs N (20)]`.
 */
import { spawnSync } from 'node:child_process';
import { existsSync } from 'node:fs';
import { fileURLToPath } from 'node:url';
import { flag, percentile, report, type Row } from './lib.js';

const root = fileURLToPath(new URL('..', import.meta.url));
const BIN = `${root}bin/clustermesh`;

interface Case {
  readonly metric: string;
  readonly args: readonly string[];
  readonly env?: Record<string, string>;
  readonly goal?: string;
}

const CASES: readonly Case[] = [
  { metric: '--version', args: ['--version'], goal: '<= 2.5x' },
  {
    metric: 'view (node list)',
    args: ['-H', 'http://127.0.0.1:9', 'node', 'list'],
    goal: '<= 2.5x',
  },
  {
    metric: '--version from source',
    args: ['--version'],
    env: { CLUSTERMESH_FROM_SOURCE: '1' },
  },
];

function wallMs(cmd: string, args: readonly string[], env?: Record<string, string>): number {
  const t0 = performance.now();
  spawnSync(cmd, args, { stdio: 'ignore', env: { ...process.env, ...env } });
  return performance.now() - t0;
}

export function main(args: string[]): Promise<void> {
  const runs = flag(args, '--runs', 'positive integer', 20);
  if (!existsSync(`${root}dist/build-stamp`)) {
    // The first case measures the built CLI; build it as `npm install` would.
    spawnSync(process.execPath, [`${root}scripts/build.mjs`], { stdio: 'inherit' });
  }
  const rows: Row[] = [];
  for (const c of CASES) {
    // One warm-up of each, so the page cache holds both.
    wallMs(BIN, c.args, c.env);
    wallMs(process.execPath, ['-e', '0']);
    const ours: number[] = [];
    const base: number[] = [];
    const ratios: number[] = [];
    for (let i = 0; i < runs; i++) {
      const a = wallMs(BIN, c.args, c.env);
      const b = wallMs(process.execPath, ['-e', '0']);
      ours.push(a);
      base.push(b);
      ratios.push(a / b);
    }
    const med = (xs: number[]): number =>
      percentile(
        [...xs].sort((x, y) => x - y),
        50,
      );
    const ratio = med(ratios);
    const baseMs = med(base);
    // The table's ratio column divides ours by raw; give it the paired median ratio.
    rows.push({
      metric: c.metric,
      ours: baseMs * ratio,
      raw: baseMs,
      unit: 'ms',
      higherIsBetter: false,
      ...(c.goal === undefined ? {} : { goal: c.goal }),
    });
  }
  report('cli-start', rows, { runs }, ['clustermesh', 'node -e 0']);
  return Promise.resolve();
}
