import { runCliCaptured, type CapturedRun } from '../support/cli.js';
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { parseDuration } from '../../src/cli/common.js';

// In-process runs share the process-wide `default` memory store, so keys written by one run
// are seen by the next: enough to exercise the kvstore commands without etcd.
function run(...argv: string[]): Promise<CapturedRun> {
  return runCliCaptured(argv);
}

const MEM = ['--kvstore', 'memory'];

void describe('cli program', () => {
  it('prints help and version with exit 0', async () => {
    const help = await run('--help');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: clustermesh \[options\] \[command\]/);
    assert.equal(help.stderr, '');
    const version = await run('--version');
    assert.equal(version.code, 0);
    assert.match(version.stdout, /^\d+\.\d+\.\d+/);
  });

  it('prints a group help on stdout when run bare, like the reference', async () => {
    for (const argv of [[], ['kvstore']]) {
      const r = await run(...argv);
      assert.equal(r.code, 0);
      assert.match(r.stdout, /^Usage: clustermesh/);
      assert.equal(r.stderr, '');
    }
    const help = await run('help', 'kvstore');
    assert.equal(help.code, 0);
    assert.match(help.stdout, /^Usage: clustermesh kvstore/);
  });

  it('reports usage errors as one line with exit 2', async () => {
    const cases: [string[], string][] = [
      [
        ['nope'],
        "error: unknown command 'nope' for 'clustermesh' (known: apiserver, agent, kvstoremesh, operator, kvstore, status, node, identity, service, lb, ipcache, endpoint, apply, get, delete, up, exec, mesh, certs, observe, policy, troubleshoot, health, ui, vm)\n",
      ],
      [
        ['kvstore', 'nope'],
        "error: unknown command 'nope' for 'clustermesh kvstore' (known: get, set, delete)\n",
      ],
      [['kvstore', 'get'], "error: missing required argument 'key'\n"],
      [
        ['kvstore', 'get', 'a', 'b'],
        "error: too many arguments for 'get'. Expected 1 argument but got 2.\n",
      ],
      [
        ['-o', 'xml', 'kvstore', 'get', 'k'],
        "error: option '-o, --output <format>' argument 'xml' is invalid. Allowed choices are text, json, yaml.\n",
      ],
      [
        ['kvstore', 'get', '--timeout', 'soon', 'k'],
        "error: option '--timeout <duration>' argument 'soon' is invalid. Expected a duration such as 500ms, 5s or 1m.\n",
      ],
      [['kvstore', 'delete', ...MEM, ''], 'error: key must not be empty\n'],
    ];
    for (const [argv, stderr] of cases) {
      const r = await run(...argv);
      assert.deepEqual(r, { code: 2, stdout: '', stderr }, argv.join(' '));
    }
  });

  it('reports failures as "clustermesh: <message>" with exit 1', async () => {
    const r = await run('kvstore', 'get', '--kvstore-opt', 'etcd.limit=x', 'k');
    assert.equal(r.code, 1);
    assert.equal(r.stderr, 'clustermesh: --kvstore-opt etcd.limit=x: must be a positive integer\n');
  });

  it('sets, gets, lists and deletes keys in every output format', async () => {
    assert.deepEqual(await run('kvstore', 'set', ...MEM, 'u/p/b', 'two'), {
      code: 0,
      stdout: '',
      stderr: '',
    });
    await run('kvstore', 'set', ...MEM, 'u/p/a', 'one');
    await run('kvstore', 'set', ...MEM, 'u/q', 'other');

    assert.equal((await run('kvstore', 'get', ...MEM, 'u/p/a')).stdout, 'u/p/a => one\n');
    assert.equal(
      (await run('kvstore', 'get', '-r', ...MEM, 'u/p/')).stdout,
      'u/p/a => one\nu/p/b => two\n',
    );
    assert.deepEqual(
      JSON.parse((await run('-o', 'json', 'kvstore', 'get', ...MEM, 'u/q')).stdout),
      {
        key: 'u/q',
        value: 'other',
      },
    );
    assert.equal(
      (await run('kvstore', 'get', '-r', '-o', 'yaml', ...MEM, 'u/p/')).stdout,
      '- key: u/p/a\n  value: one\n- key: u/p/b\n  value: two\n',
    );

    const missing = await run('kvstore', 'get', ...MEM, 'u/none');
    assert.deepEqual(missing, {
      code: 1,
      stdout: '',
      stderr: 'clustermesh: key u/none is not found\n',
    });
    assert.deepEqual(await run('kvstore', 'get', '-r', ...MEM, 'u/none/'), {
      code: 0,
      stdout: '',
      stderr: '',
    });

    assert.equal(
      (await run('kvstore', 'delete', '-o', 'json', ...MEM, 'u/missing')).stdout,
      '{\n  "deleted": 0\n}\n',
    );
    assert.equal(
      (await run('kvstore', 'delete', '-r', '-o', 'yaml', ...MEM, 'u/')).stdout,
      'deleted: 3\n',
    );
    assert.equal((await run('kvstore', 'get', ...MEM, 'u/q')).code, 1);
  });

  it('parses durations', () => {
    assert.equal(parseDuration('500ms'), 500);
    assert.equal(parseDuration('2s'), 2000);
    assert.equal(parseDuration('1.5'), 1500);
    assert.equal(parseDuration('1m'), 60_000);
    assert.throws(() => parseDuration('0s'), /greater than zero/);
    assert.throws(() => parseDuration('-1s'), /Expected a duration/);
  });
});
