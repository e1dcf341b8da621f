#!/usr/bin/env node
// Runs the node:test suites. Node 20 does not expand globs, so the files are listed here.
// Usage: node scripts/run-tests.mjs [unit|integration|e2e ...] [--only PATTERN]
import { readdirSync, readFileSync, statSync } from 'node:fs';
import { join, relative } from 'node:path';
import { spawn, spawnSync } from 'node:child_process';

const root = new URL('..', import.meta.url).pathname;
const args = process.argv.slice(2);
let only;
const suites = [];
for (let i = 0; i < args.length; i++) {
  if (args[i] === '--only') only = args[++i];
  else suites.push(args[i]);
}
const selected = suites.length > 0 ? suites : ['unit', 'integration', 'e2e'];

function walk(dir) {
  let out = [];
  let entries = [];
  try {
    entries = readdirSync(dir);
  } catch {
    return out;
  }
  for (const name of entries.sort()) {
    const p = join(dir, name);
    if (statSync(p).isDirectory()) out = out.concat(walk(p));
    else if (name.endsWith('.test.ts')) out.push(p);
  }
  return out;
}

let files = selected.flatMap((s) => walk(join(root, 'test', s)));
if (only) files = files.filter((f) => f.includes(only));
if (files.length === 0) {
  console.error('no test files selected');
  process.exit(1);
}

if (selected.some((s) => s !== 'unit')) {
  const etcd = spawnSync('sh', ['-c', 'command -v etcd'], { encoding: 'utf8' });
  if (etcd.status !== 0) {
    console.log('etcd not found: installing etcd-server with apt-get');
    const r = spawnSync('sh', ['-c', 'apt-get update -qq && apt-get install -y -qq etcd-server'], {
      stdio: 'inherit',
    });
    if (r.status !== 0) {
      console.error('could not install etcd-server; integration tests need it');
      process.exit(1);
    }
  }
}

// The e2e tests run bin/clustermesh, which starts from dist/ when it is fresh: build it, so
// they test this checkout's code at the speed users get.
const built = spawnSync(process.execPath, [join(root, 'scripts', 'build.mjs')], {
  stdio: 'inherit',
});
if (built.status !== 0) {
  console.error('scripts/build.mjs failed');
  process.exit(1);
}

// Files run two at a time, each in its own `node --test` process. The e2e files that run
// `clustermesh up` hold the machine-wide lock of the block of cluster IDs they use
// (test/support/up-lock.ts); two files of one block would only take turns, one of them
// holding a slot while it waits. So the runner never starts a file whose block a running
// file holds, and starts the longest files first (rough CI seconds below; others count
// as short) so the short ones fill the gaps at the end.
const CI_SECONDS = {
  'e2e/mcsapi-3-clusters.test.ts': 170,
  'e2e/mcsapi.test.ts': 130,
  'e2e/k8s-mode.test.ts': 70,
  'e2e/mesh-setup.test.ts': 90,
  'e2e/failover.test.ts': 80,
  'e2e/policy-enforcement.test.ts': 78,
  'e2e/external-workloads.test.ts': 60,
  'e2e/troubleshoot.test.ts': 60,
  'e2e/mesh-setup-manual.test.ts': 55,
  'e2e/up.test.ts': 50,
  'e2e/ui.test.ts': 35,
  'e2e/mesh-core.test.ts': 26,
  'e2e/kubeapi-exec.test.ts': 23,
  'e2e/kubeapi-up.test.ts': 20,
  'e2e/kvstoremesh.test.ts': 19,
  'e2e/policy-trace.test.ts': 16,
};
const seconds = (f) =>
  Object.entries(CI_SECONDS).find(([k]) => f.endsWith(k))?.[1] ?? (f.includes('/e2e/') ? 10 : 3);
/** The first cluster ID of the block whose up lock the file takes, or undefined. */
function lockBlock(file) {
  const m = /acquireUpLock\(\s*(?:[\d_]+\s*(?:,\s*(\d)\s*)?)?\)/.exec(readFileSync(file, 'utf8'));
  return m === null ? undefined : Number(m[1] ?? 1);
}
const pending = files
  .map((f) => ({ file: f, block: lockBlock(f), seconds: seconds(f) }))
  .sort((a, b) => b.seconds - a.seconds);
const concurrency = Math.max(1, Number(process.env.TEST_CONCURRENCY ?? '2'));
const env = { ...process.env, LOG_LEVEL: process.env.LOG_LEVEL ?? 'silent' };
const totals = new Map();
const failedFiles = [];
const wall = [];
const running = new Set();

function runFile(job) {
  return new Promise((resolve) => {
    const started = Date.now();
    const child = spawn(
      process.execPath,
      ['--import', 'tsx', '--test', '--test-reporter=spec', job.file],
      { cwd: root, env, stdio: ['ignore', 'pipe', 'pipe'] },
    );
    const chunks = [];
    child.stdout.on('data', (d) => chunks.push(d));
    child.stderr.on('data', (d) => chunks.push(d));
    child.on('close', (code, signal) => {
      const out = Buffer.concat(chunks).toString();
      const rel = relative(root, job.file);
      const secs = (Date.now() - started) / 1000;
      // Each file's report in one piece, so two files' lines never interleave.
      process.stdout.write(
        `\n# ${rel} (${secs.toFixed(1)} s)\n${out.replace(/^\u2139 .*\n?/gm, '')}`,
      );
      for (const m of out.matchAll(
        /^\u2139 (tests|suites|pass|fail|cancelled|skipped|todo) (\d+)$/gm,
      ))
        totals.set(m[1], (totals.get(m[1]) ?? 0) + Number(m[2]));
      if (code !== 0) failedFiles.push(`${rel} (exit ${code ?? signal})`);
      wall.push([rel, secs]);
      resolve();
    });
  });
}

const t0 = Date.now();
await new Promise((done) => {
  const next = () => {
    if (pending.length === 0 && running.size === 0) return done();
    while (running.size < concurrency) {
      const held = new Set([...running].map((j) => j.block).filter((b) => b !== undefined));
      const i = pending.findIndex((j) => j.block === undefined || !held.has(j.block));
      if (i < 0) break;
      const [job] = pending.splice(i, 1);
      running.add(job);
      void runFile(job).then(() => {
        running.delete(job);
        next();
      });
    }
  };
  next();
});

console.log('\n# slowest files');
for (const [rel, secs] of wall.sort((a, b) => b[1] - a[1]).slice(0, 12))
  console.log(`#   ${secs.toFixed(1).padStart(6)} s  ${rel}`);
for (const k of ['tests', 'suites', 'pass', 'fail', 'cancelled', 'skipped', 'todo'])
  console.log(`\u2139 ${k} ${totals.get(k) ?? 0}`);
console.log(`\u2139 duration_ms ${Date.now() - t0}`);
if (failedFiles.length > 0) {
  console.log(`\n# failed files:\n${failedFiles.map((f) => `#   ${f}`).join('\n')}`);
  process.exit(1);
}
