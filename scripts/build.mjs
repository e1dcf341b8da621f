#!/usr/bin/env node
// Transpiles src/ to dist/src/ (one .js per .ts, no bundling, so the CLI's lazy imports stay
// lazy). Runs at install time (`prepare`) and before the tests, so `bin/clustermesh` starts
// from JavaScript instead of compiling TypeScript on every call. Type-checking is `npm run
// typecheck`'s job; this only strips types.
import { readdirSync, rmSync, statSync, writeFileSync } from 'node:fs';
import { join, relative } from 'node:path';
import { fileURLToPath } from 'node:url';
import { build } from 'esbuild';

const root = fileURLToPath(new URL('..', import.meta.url));
const srcDir = join(root, 'src');
// Same depth as src/, so paths relative to a module (`../../package.json`) hold in both.
const outDir = join(root, 'dist');

function walk(dir) {
  const out = [];
  for (const name of readdirSync(dir).sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out.push(...walk(p));
    else if (name.endsWith('.ts') && !name.endsWith('.d.ts')) out.push(p);
  }
  return out;
}

const t0 = performance.now();
const entryPoints = walk(srcDir);
rmSync(outDir, { recursive: true, force: true });
await build({
  entryPoints,
  outbase: srcDir,
  outdir: outDir,
  format: 'esm',
  platform: 'node',
  target: 'node20',
  sourcemap: 'linked',
  logLevel: 'warning',
});
// The browser view (web/, Preact): one bundle with its CSS, served by `clustermesh up` from
// dist/web. Everything is local: no CDN, no external font.
await build({
  entryPoints: { app: join(root, 'web', 'main.tsx') },
  outdir: join(outDir, 'web'),
  bundle: true,
  // The layout library is a chunk of its own, loaded when the service map first lays out.
  splitting: true,
  chunkNames: 'chunk-[hash]',
  format: 'esm',
  platform: 'browser',
  target: ['chrome110', 'firefox110', 'safari16'],
  jsx: 'automatic',
  jsxImportSource: 'preact',
  minify: true,
  sourcemap: 'linked',
  logLevel: 'warning',
});
// The stamp is written last: bin/clustermesh trusts dist/ only when the stamp is newer than
// every source file, so an interrupted build is never used.
writeFileSync(join(root, 'dist', 'build-stamp'), `${new Date().toISOString()}\n`);
if (process.argv.includes('--verbose')) {
  const ms = Math.round(performance.now() - t0);
  console.log(`built ${entryPoints.length} files into ${relative(root, outDir)} in ${ms} ms`);
}
