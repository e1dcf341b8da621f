/**
 * The container image definition, checked without a container engine: the Dockerfile is
 * parsed; every file its build context copies exists and is not excluded by .dockerignore;
 * what later stages copy from earlier ones is what those stages make (npm ci's
 * node_modules, scripts/build.mjs's dist/); the final stage is Node 20 slim and runs as a
 * non-root user; and its entrypoint, run here against the same layout (package.json,
 * dist/, node_modules, no src/ and no bin/), is our CLI.
 */
import assert from 'node:assert/strict';
import { execFile, spawnSync } from 'node:child_process';
import { existsSync, readdirSync, readFileSync, statSync } from 'node:fs';
import { cp, mkdtemp, rm, symlink, writeFile } from 'node:fs/promises';
import { builtinModules } from 'node:module';
import { tmpdir } from 'node:os';
import { join, posix } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';

const ROOT = fileURLToPath(new URL('../../', import.meta.url));

interface Instruction {
  readonly op: string;
  readonly args: string;
  readonly line: number;
}

interface Stage {
  readonly from: string;
  readonly name: string | undefined;
  readonly instructions: Instruction[];
}

/** Instructions with continuation lines joined, comments and the parser directive dropped. */
function parseDockerfile(text: string): Stage[] {
  const stages: Stage[] = [];
  const lines = text.split('\n');
  for (let i = 0; i < lines.length; i++) {
    const start = i + 1;
    let line = lines[i] ?? '';
    if (/^\s*(#|$)/.test(line)) continue;
    while (line.endsWith('\\') && i + 1 < lines.length) {
      line = `${line.slice(0, -1)} ${(lines[++i] ?? '').trim()}`;
    }
    const m = /^\s*([A-Za-z]+)\s+(.*)$/.exec(line);
    assert.ok(m !== null, `Dockerfile:${start}: not an instruction: ${line}`);
    const op = (m[1] ?? '').toUpperCase();
    const args = (m[2] ?? '').trim();
    if (op === 'FROM') {
      const f = /^(\S+)(?:\s+AS\s+(\S+))?$/i.exec(args);
      assert.ok(f !== null, `Dockerfile:${start}: FROM ${args}`);
      stages.push({ from: f[1] ?? '', name: f[2], instructions: [] });
      continue;
    }
    const stage = stages.at(-1);
    assert.ok(stage !== undefined, `Dockerfile:${start}: ${op} before any FROM`);
    stage.instructions.push({ op, args, line: start });
  }
  return stages;
}

interface Copy {
  readonly from: string | undefined;
  readonly sources: string[];
  readonly dest: string;
  readonly line: number;
}

function copiesOf(stage: Stage): Copy[] {
  return stage.instructions
    .filter((i) => i.op === 'COPY')
    .map((i) => {
      const words = i.args.split(/\s+/);
      let from: string | undefined;
      const rest: string[] = [];
      for (const w of words) {
        if (w.startsWith('--from=')) from = w.slice('--from='.length);
        else if (!w.startsWith('--')) rest.push(w);
      }
      const dest = rest.pop() ?? '';
      return { from, sources: rest, dest, line: i.line };
    });
}

function workdirAt(stage: Stage, line: number): string {
  let dir = '/';
  for (const i of stage.instructions) {
    if (i.line > line) break;
    if (i.op === 'WORKDIR') dir = posix.resolve(dir, i.args);
  }
  return dir;
}

/** .dockerignore: `*` then `!path` re-includes (the only form it uses); true = sent. */
function inContext(path: string): boolean {
  const rules = readFileSync(join(ROOT, '.dockerignore'), 'utf8')
    .split('\n')
    .map((l) => l.trim())
    .filter((l) => l !== '' && !l.startsWith('#'));
  let included = true;
  for (const rule of rules) {
    const negate = rule.startsWith('!');
    const pattern = (negate ? rule.slice(1) : rule).replace(/\/$/, '');
    const hit = pattern === '*' || path === pattern || path.startsWith(`${pattern}/`);
    if (hit) included = negate;
  }
  return included;
}

function walk(dir: string): string[] {
  return readdirSync(dir).flatMap((name) => {
    const p = join(dir, name);
    return statSync(p).isDirectory() ? walk(p) : [p];
  });
}

const stages = parseDockerfile(readFileSync(join(ROOT, 'Dockerfile'), 'utf8'));
const final = stages.at(-1);

void describe('Dockerfile', () => {
  it('has a build, a deps and a final stage, all FROM node:20 slim', () => {
    assert.ok(stages.length >= 2, 'a multi-stage build');
    for (const s of stages) assert.match(s.from, /^node:20(\.\d+)*-(\w+-)?slim$/);
    assert.deepEqual(
      stages.map((s) => s.name),
      ['build', 'deps', undefined],
    );
  });

  it('copies from its build context only files that exist and that .dockerignore sends', () => {
    let checked = 0;
    for (const s of stages) {
      for (const c of copiesOf(s).filter((x) => x.from === undefined)) {
        for (const src of c.sources) {
          assert.ok(existsSync(join(ROOT, src)), `Dockerfile:${c.line}: ${src} does not exist`);
          assert.ok(inContext(src), `Dockerfile:${c.line}: .dockerignore excludes ${src}`);
          const files = statSync(join(ROOT, src)).isDirectory()
            ? walk(join(ROOT, src)).map((f) => f.slice(ROOT.length))
            : [src];
          for (const f of files) assert.ok(inContext(f), `.dockerignore excludes ${f}`);
          checked++;
        }
      }
    }
    assert.ok(checked >= 6, `only ${checked} sources checked`);
    // Nothing else is sent: no node_modules, dist, state or tests in the context.
    for (const p of ['node_modules', 'dist', 'test', '.git', '.clustermesh', 'bench']) {
      assert.equal(inContext(p), false, `.dockerignore sends ${p}`);
    }
  });

  it("copies from earlier stages only what they make: npm ci's node_modules, the build's dist", () => {
    assert.ok(final !== undefined, 'a final stage');
    const made = new Map<string, string[]>();
    for (const s of stages.slice(0, -1)) {
      const outputs: string[] = [];
      for (const i of s.instructions.filter((x) => x.op === 'RUN')) {
        const wd = workdirAt(s, i.line);
        if (/\bnpm ci\b/.test(i.args)) outputs.push(posix.join(wd, 'node_modules'));
        // scripts/build.mjs writes dist/ beside src/ (its outDir, read from the script).
        if (/\bnode scripts\/build\.mjs\b/.test(i.args)) {
          const script = readFileSync(join(ROOT, 'scripts/build.mjs'), 'utf8');
          const out = /const outDir = join\(root, '([^']+)'\)/.exec(script)?.[1];
          assert.ok(out !== undefined, 'scripts/build.mjs names its outDir');
          outputs.push(posix.join(wd, out));
        }
        // The production install must not run `prepare` (the build) nor bring dev deps.
        if (s.name === 'deps' && /\bnpm ci\b/.test(i.args)) {
          assert.match(i.args, /--omit=dev/);
          assert.match(i.args, /--ignore-scripts/);
        }
      }
      made.set(s.name ?? '', outputs);
    }
    const fromStages = copiesOf(final).filter((c) => c.from !== undefined);
    assert.equal(fromStages.length, 2);
    for (const c of fromStages) {
      const outputs = made.get(c.from ?? '') ?? [];
      for (const src of c.sources) {
        assert.ok(outputs.includes(src), `Dockerfile:${c.line}: stage ${c.from} makes no ${src}`);
      }
    }
  });

  it('runs as a non-root user in the final stage', () => {
    assert.ok(final !== undefined, 'a final stage');
    const users = final.instructions.filter((i) => i.op === 'USER');
    const user = users.at(-1)?.args ?? '';
    assert.ok(user !== '', 'the final stage sets USER');
    const [uid = ''] = user.split(':');
    assert.notEqual(uid, 'root');
    assert.ok(/^\d+$/.test(uid) ? Number(uid) !== 0 : uid !== 'root', `USER ${user} is root`);
    // No instruction after USER needs root (a RUN would fail as the unprivileged user).
    const userLine = users.at(-1)?.line ?? 0;
    assert.ok(
      !final.instructions.some((i) => i.op === 'RUN' && i.line > userLine),
      'no RUN after USER',
    );
  });

  void describe('entrypoint against the image layout', () => {
    let app = '';
    let entry: string[];

    before(async () => {
      assert.ok(final !== undefined, 'a final stage');
      const ep = final.instructions.find((i) => i.op === 'ENTRYPOINT');
      assert.ok(ep !== undefined, 'an ENTRYPOINT');
      entry = JSON.parse(ep.args) as string[];
      assert.ok(Array.isArray(entry) && entry.length >= 2, 'exec form');
      if (!existsSync(join(ROOT, 'dist', 'main.js'))) {
        const r = spawnSync(process.execPath, [join(ROOT, 'scripts', 'build.mjs')], {
          encoding: 'utf8',
        });
        assert.equal(r.status, 0, r.stderr);
      }
      // The runtime stage's /app: package.json, dist/, node_modules; no src/, no bin/.
      const dir = await mkdtemp(join(tmpdir(), 'cm-image-'));
      app = join(dir, 'app');
      const wd = workdirAt(final, Number.MAX_SAFE_INTEGER);
      assert.equal(wd, '/app');
      await cp(join(ROOT, 'dist'), join(app, 'dist'), { recursive: true });
      await cp(join(ROOT, 'package.json'), join(app, 'package.json'));
      await symlink(join(ROOT, 'node_modules'), join(app, 'node_modules'));
      await writeFile(join(dir, 'marker'), 'image layout for deploy-image.test.ts\n');
    });

    after(async () => {
      if (app !== '') await rm(join(app, '..'), { recursive: true, force: true });
    });

    const runEntry = (args: string[]): Promise<{ code: number; out: string; err: string }> =>
      new Promise((resolve) => {
        const [cmd = '', ...rest] = entry.map((a) => a.replace(/^\/app\//, `${app}/`));
        assert.equal(cmd, 'node');
        execFile(
          process.execPath,
          [...rest, ...args],
          { cwd: tmpdir(), env: { PATH: process.env.PATH ?? '', HOME: tmpdir() }, timeout: 30_000 },
          (err, out, errOut) => {
            resolve({ code: err === null ? 0 : Number(err.code ?? 1), out, err: errOut });
          },
        );
      });

    it('runs the CLI: --help lists the daemons, --version prints package.json', async () => {
      const help = await runEntry(['--help']);
      assert.equal(help.code, 0, help.err);
      assert.match(help.out, /^Usage: clustermesh \[options\] \[command\]/);
      for (const cmd of ['apiserver', 'agent', 'operator', 'kvstoremesh']) {
        assert.match(help.out, new RegExp(`\\n  ${cmd} \\[options\\]`), `help lists ${cmd}`);
      }
      const version = await runEntry(['--version']);
      assert.equal(version.code, 0, version.err);
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
        version: string;
      };
      assert.equal(version.out.trim(), pkg.version);
      // The chart's daemons each start their command's help from this entrypoint.
      const apiserver = await runEntry(['apiserver', '--help']);
      assert.equal(apiserver.code, 0, apiserver.err);
      assert.match(apiserver.out, /--k8s-kubeconfig-path/);
    });

    it('imports at run time only Node built-ins and production dependencies', () => {
      const pkg = JSON.parse(readFileSync(join(ROOT, 'package.json'), 'utf8')) as {
        dependencies: Record<string, string>;
      };
      const allowed = new Set(Object.keys(pkg.dependencies));
      const builtins = new Set(builtinModules);
      const bad = new Set<string>();
      let imports = 0;
      for (const f of walk(join(ROOT, 'dist')).filter((x) => x.endsWith('.js'))) {
        if (f.startsWith(join(ROOT, 'dist', 'web'))) continue;
        const text = readFileSync(f, 'utf8');
        const specs = [
          ...text.matchAll(/^\s*(?:import|export)\s[^;]*?\bfrom\s*["']([^"']+)["']/gm),
          ...text.matchAll(/^\s*import\s*["']([^"']+)["']/gm),
          ...text.matchAll(/\bimport\(\s*["']([^"']+)["']\s*\)/g),
        ].map((m) => m[1] ?? '');
        for (const spec of specs) {
          if (spec.startsWith('.')) continue;
          imports++;
          if (spec.startsWith('node:') || builtins.has(spec)) continue;
          const name = spec.startsWith('@')
            ? spec.split('/').slice(0, 2).join('/')
            : (spec.split('/')[0] ?? spec);
          if (!allowed.has(name)) bad.add(`${name} (${f.slice(ROOT.length)})`);
        }
      }
      assert.ok(imports > 50, `only ${imports} imports found in dist/`);
      assert.deepEqual([...bad], [], 'dist/ imports packages the image does not install');
    });
  });
});
