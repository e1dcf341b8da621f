import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server, type Socket } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { after, before, describe, it } from 'node:test';
import type { Etcd3 } from 'etcd3';
import { startEtcd, type EtcdServer } from '../support/etcd.js';

// The real launcher, run from a foreign cwd: what a user gets after `npm install`.
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface RunResult {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
  readonly ms: number;
}

let workDir: string;

function cli(args: readonly string[], env: Record<string, string> = {}): Promise<RunResult> {
  const start = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      BIN,
      args,
      {
        cwd: workDir,
        env: { ...process.env, LOG_LEVEL: 'silent', CLUSTERMESH_DEBUG: '', ...env },
        timeout: 20_000,
      },
      (err, stdout, stderr) => {
        if (err === null) {
          resolve({ code: 0, stdout, stderr, ms: performance.now() - start });
        } else if (typeof err.code === 'number') {
          resolve({ code: err.code, stdout, stderr, ms: performance.now() - start });
        } else {
          reject(new Error(`could not run ${BIN}: ${err.message}`, { cause: err }));
        }
      },
    );
  });
}

/** The CLI contract: a failure is exactly one line on stderr, never a stack trace. */
function assertOneLine(stderr: string): void {
  assert.match(stderr, /^[^\n]+\n$/, `expected one stderr line, got ${JSON.stringify(stderr)}`);
  assert.doesNotMatch(stderr, /^\s+at /m);
}

let etcd: EtcdServer;
let tlsEtcd: EtcdServer;
let addr: string[];
// Seeds and checks keys directly: every CLI spawn costs about a second of CPU.
let admin: Etcd3;

before(async () => {
  workDir = await mkdtemp(join(tmpdir(), 'cli-kvstore-'));
  [etcd, tlsEtcd] = await Promise.all([startEtcd(), startEtcd({ tls: true })]);
  addr = ['--kvstore-opt', `etcd.address=${etcd.endpoints.join(',')}`];
  admin = etcd.createClient();
});

after(async () => {
  admin.close();
  await Promise.all([etcd.destroy(), tlsEtcd.destroy()]);
  await rm(workDir, { recursive: true, force: true });
});

void describe('clustermesh kvstore (etcd)', { concurrency: 4 }, () => {
  it('set then get prints "<key> => <value>"', async () => {
    const set = await cli(['kvstore', 'set', ...addr, 'e2e/single/k1', '{"a": 1} x']);
    assert.deepEqual([set.code, set.stdout, set.stderr], [0, '', '']);
    // Written without a lease: it must outlive the command.
    const [stored] = (await admin.get('e2e/single/k1').exec()).kvs;
    assert.ok(stored !== undefined, 'stored !== undefined');
    assert.equal(stored.value.toString(), '{"a": 1} x');
    assert.equal(stored.lease, '0');
    const get = await cli(['kvstore', 'get', ...addr, 'e2e/single/k1']);
    assert.deepEqual([get.code, get.stdout, get.stderr], [0, 'e2e/single/k1 => {"a": 1} x\n', '']);
  });

  it('get --recursive prints every key under the prefix in key order', async () => {
    for (const k of ['c', 'a', 'b/x']) await admin.put(`e2e/rec/${k}`).value(`v-${k}`);
    // Same leading characters, different prefix: must not show up.
    await admin.put('e2e/rec2/z').value('no');

    const text = await cli(['kvstore', 'get', '--recursive', ...addr, 'e2e/rec/']);
    assert.equal(text.code, 0);
    assert.equal(text.stdout, 'e2e/rec/a => v-a\ne2e/rec/b/x => v-b/x\ne2e/rec/c => v-c\n');
    assert.equal(text.stderr, '');

    const json = await cli(['-o', 'json', 'kvstore', 'get', '-r', ...addr, 'e2e/rec/']);
    assert.equal(json.code, 0);
    assert.deepEqual(JSON.parse(json.stdout), [
      { key: 'e2e/rec/a', value: 'v-a' },
      { key: 'e2e/rec/b/x', value: 'v-b/x' },
      { key: 'e2e/rec/c', value: 'v-c' },
    ]);

    const del = await cli(['kvstore', 'delete', '-r', '-o', 'json', ...addr, 'e2e/rec/']);
    assert.equal(del.code, 0);
    assert.deepEqual(JSON.parse(del.stdout), { deleted: 3 });
    assert.equal(await admin.get('e2e/rec2/z').string(), 'no');
    // A prefix with nothing under it is not an error.
    const gone = await cli(['kvstore', 'get', '-r', ...addr, 'e2e/rec/']);
    assert.deepEqual([gone.code, gone.stdout, gone.stderr], [0, '', '']);
  });

  it('get -o json of a single key prints {"key","value"}', async () => {
    await admin.put('e2e/json/k').value('v');
    const r = await cli(['kvstore', 'get', '-o', 'json', ...addr, 'e2e/json/k']);
    assert.equal(r.code, 0);
    assert.deepEqual(JSON.parse(r.stdout), { key: 'e2e/json/k', value: 'v' });
  });

  it('a missing key fails with the reference wording', async () => {
    const r = await cli(['kvstore', 'get', ...addr, 'e2e/missing/key']);
    assert.equal(r.code, 1);
    assert.equal(r.stdout, '');
    assert.equal(r.stderr, 'clustermesh: key e2e/missing/key is not found\n');
  });

  it('delete removes a key', async () => {
    await admin.put('e2e/del/k').value('v');
    await admin.put('e2e/del/k2').value('stays');
    const del = await cli(['kvstore', 'delete', ...addr, 'e2e/del/k']);
    assert.deepEqual([del.code, del.stdout, del.stderr], [0, '', '']);
    assert.equal(await admin.get('e2e/del/k').string(), null);
    assert.equal(await admin.get('e2e/del/k2').string(), 'stays');
  });

  it('connects to a TLS etcd through etcd.config', async () => {
    const file = await tlsEtcd.writeClientConfig(join(workDir, 'tls-etcd.yaml'));
    const opt = ['--kvstore-opt', `etcd.config=${file}`];
    const set = await cli(['kvstore', 'set', ...opt, 'e2e/tls/k', 'secure']);
    assert.deepEqual([set.code, set.stderr], [0, '']);
    const get = await cli(['kvstore', 'get', ...opt, 'e2e/tls/k']);
    assert.deepEqual([get.code, get.stdout, get.stderr], [0, 'e2e/tls/k => secure\n', '']);
  });

  it('an unreachable etcd is one line, exit 1', async () => {
    const r = await cli([
      'kvstore',
      'get',
      '--kvstore-opt',
      'etcd.address=http://127.0.0.1:1',
      'k',
    ]);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr);
    assert.match(r.stderr, /^clustermesh: etcd at http:\/\/127\.0\.0\.1:1 unreachable: /);
  });

  it('a silent endpoint is given up on after --timeout', async () => {
    // Accepts TCP and never answers: what a black-holed etcd looks like to gRPC.
    const sockets = new Set<Socket>();
    const server: Server = createServer((s) => sockets.add(s));
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
    const address = server.address();
    assert.ok(
      address !== null && typeof address === 'object',
      "address !== null && typeof address === 'object'",
    );
    try {
      const url = `http://127.0.0.1:${address.port}`;
      const r = await cli([
        'kvstore',
        'get',
        '--timeout',
        '500ms',
        '--kvstore-opt',
        `etcd.address=${url}`,
        'k',
      ]);
      assert.equal(r.code, 1);
      assert.equal(r.stderr, `clustermesh: etcd at ${url} unreachable: no answer within 500ms\n`);
      assert.ok(r.ms < 8_000, `took ${Math.round(r.ms)} ms`);
    } finally {
      for (const s of sockets) s.destroy();
      await new Promise((resolve) => server.close(resolve));
    }
  });

  it('a missing etcd.config file is one line naming the file', async () => {
    const file = join(workDir, 'does-not-exist.yaml');
    const r = await cli(['kvstore', 'get', '--kvstore-opt', `etcd.config=${file}`, 'k']);
    assert.equal(r.code, 1);
    assert.equal(r.stderr, `clustermesh: etcd config file ${file} not found\n`);
  });

  it('a malformed etcd.config file is one line naming the file and the field', async () => {
    const wrongType = join(workDir, 'wrong-type.yaml');
    await writeFile(wrongType, 'endpoints: 5\n');
    const r1 = await cli(['kvstore', 'get', '--kvstore-opt', `etcd.config=${wrongType}`, 'k']);
    assert.equal(r1.code, 1);
    assertOneLine(r1.stderr);
    assert.ok(
      r1.stderr.startsWith(`clustermesh: etcd config file ${wrongType}: endpoints: `),
      r1.stderr,
    );

    const badYaml = join(workDir, 'bad.yaml');
    await writeFile(badYaml, 'endpoints: [http://127.0.0.1:2379\n');
    const r2 = await cli(['kvstore', 'get', '--kvstore-opt', `etcd.config=${badYaml}`, 'k']);
    assert.equal(r2.code, 1);
    assertOneLine(r2.stderr);
    assert.ok(
      r2.stderr.startsWith(`clustermesh: etcd config file ${badYaml}: invalid YAML`),
      r2.stderr,
    );
  });

  it('no kvstore options is one line, exit 1', async () => {
    const r = await cli(['kvstore', 'get', 'k']);
    assert.equal(r.code, 1);
    assertOneLine(r.stderr);
    assert.match(r.stderr, /etcd\.address=URL/);
  });

  it('CLUSTERMESH_DEBUG=1 adds the stack trace', async () => {
    const r = await cli(
      ['kvstore', 'get', '--kvstore-opt', 'etcd.address=http://127.0.0.1:1', 'k'],
      {
        CLUSTERMESH_DEBUG: '1',
      },
    );
    assert.equal(r.code, 1);
    assert.match(r.stderr, /^clustermesh: etcd at .* unreachable/);
    assert.match(r.stderr, /^\s+at /m);
  });
});

void describe('clustermesh usage', { concurrency: 4 }, () => {
  it('--help exits 0 and lists kvstore', async () => {
    const r = await cli(['--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Usage: clustermesh /);
    assert.match(r.stdout, /^\s+kvstore\s/m);
    assert.equal(r.stderr, '');
  });

  it('kvstore get --help documents the output format', async () => {
    const r = await cli(['kvstore', 'get', '--help']);
    assert.equal(r.code, 0);
    assert.match(r.stdout, /--recursive/);
    assert.match(r.stdout, /<key> => <value>/);
  });

  it('an unknown command is one line, exit 2', async () => {
    const r = await cli(['frobnicate']);
    assert.equal(r.code, 2);
    assertOneLine(r.stderr);
    assert.match(r.stderr, /^error: unknown command 'frobnicate'/);
    const sub = await cli(['kvstore', 'frobnicate']);
    assert.equal(sub.code, 2);
    assertOneLine(sub.stderr);
    assert.match(sub.stderr, /^error: unknown command 'frobnicate' for 'clustermesh kvstore'/);
  });

  it('an unknown flag is one line, exit 2', async () => {
    const r = await cli(['kvstore', 'get', '--recursiv', 'k']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "error: unknown option '--recursiv' (Did you mean --recursive?)\n");
  });

  it('a missing argument is one line, exit 2', async () => {
    const r = await cli(['kvstore', 'get']);
    assert.equal(r.code, 2);
    assert.equal(r.stderr, "error: missing required argument 'key'\n");
  });
});
