/**
 * The import graph goes one way: the local mesh composes the workload runtime, never the
 * reverse, so the workload runtime can run under any composition (a test harness, a daemon).
 */
import assert from 'node:assert/strict';
import { readdirSync, readFileSync } from 'node:fs';
import { join } from 'node:path';
import { describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const SRC = fileURLToPath(new URL('../../src/', import.meta.url));

function importsOf(dir: string): { file: string; spec: string }[] {
  return readdirSync(join(SRC, dir))
    .filter((f) => f.endsWith('.ts'))
    .flatMap((f) => {
      const text = readFileSync(join(SRC, dir, f), 'utf8');
      const specs = [...text.matchAll(/(?:from|import\()\s*'([^']+)'/g)].map((m) => m[1] ?? '');
      return specs.map((spec) => ({ file: `${dir}/${f}`, spec }));
    });
}

void describe('workloads layering', () => {
  it('finds the imports it checks', () => {
    assert.ok(
      importsOf('workloads').some((i) => i.spec === '../registry/registry.js'),
      "importsOf('workloads').some((i) => i.spec === '../registry/registry.js')",
    );
  });

  it('src/workloads imports neither the local mesh, exec nor the CLI', () => {
    const upward = importsOf('workloads').filter((i) =>
      /^\.\.\/(localmesh|exec|cli)\//.test(i.spec),
    );
    assert.deepEqual(upward, []);
  });
});
