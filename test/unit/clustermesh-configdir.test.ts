import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rename, rm, symlink, unlink, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { setTimeout as delay } from 'node:timers/promises';
import { afterEach, beforeEach, describe, it } from 'node:test';
import { pino, type Logger } from 'pino';
import { ConfigDirWatcher, type IgnoredKind } from '../../src/clustermesh/config-dir.js';
import { eventually } from '../support/eventually.js';

type Event =
  | { kind: 'add'; name: string; path: string }
  | { kind: 'remove'; name: string }
  | { kind: 'ignored'; name: string; why: IgnoredKind };

let dir: string;
let watcher: ConfigDirWatcher | undefined;
let events: Event[];

function start(
  opts: {
    dir?: string;
    rescanIntervalMs?: number;
    local?: string;
    fsWatch?: boolean;
    log?: Logger;
  } = {},
): Promise<void> {
  watcher = new ConfigDirWatcher({
    dir: opts.dir ?? dir,
    log: opts.log,
    localClusterName: opts.local,
    fsWatch: opts.fsWatch,
    rescanIntervalMs: opts.rescanIntervalMs ?? 60_000,
    handler: {
      add: (name, path) => events.push({ kind: 'add', name, path }),
      remove: (name) => events.push({ kind: 'remove', name }),
      ignored: (name, _reason, why) => events.push({ kind: 'ignored', name, why }),
    },
  });
  return watcher.start();
}

beforeEach(async () => {
  dir = await mkdtemp(join(tmpdir(), 'clustermesh-configdir-'));
  events = [];
});

afterEach(async () => {
  await watcher?.stop();
  watcher = undefined;
  await rm(dir, { recursive: true, force: true });
});

describe('ConfigDirWatcher', () => {
  it('reports configs present at start before start() resolves', async () => {
    await writeFile(join(dir, 'c2'), 'endpoints:\n- https://c2.mesh.cilium.io:2379\n');
    await writeFile(join(dir, 'c3'), 'endpoints: [https://c3:2379]\n');
    await writeFile(join(dir, 'common-etcd-client.crt'), 'cert');
    await start();
    assert.deepEqual(events, [
      { kind: 'add', name: 'c2', path: join(dir, 'c2') },
      { kind: 'add', name: 'c3', path: join(dir, 'c3') },
    ]);
    assert.deepEqual([...(watcher?.configs().keys() ?? [])], ['c2', 'c3']);
  });

  it('follows add, content change, no-op rewrite and removal through fs events', async () => {
    await start();
    await writeFile(join(dir, 'c2'), 'endpoints:\n- https://a:2379\n');
    await eventually(() => {
      assert.deepEqual(events, [{ kind: 'add', name: 'c2', path: join(dir, 'c2') }]);
    }, 2_000);

    // Same content again: the hash is unchanged, nothing is emitted.
    await writeFile(join(dir, 'c2'), 'endpoints:\n- https://a:2379\n');
    await delay(200);
    assert.equal(events.length, 1);

    await writeFile(join(dir, 'c2'), 'endpoints:\n- https://b:2379\n');
    await eventually(() => {
      assert.equal(events.length, 2);
    }, 2_000);
    assert.deepEqual(events[1], { kind: 'add', name: 'c2', path: join(dir, 'c2') });

    // No longer an etcd config: treated as removed.
    await writeFile(join(dir, 'c2'), 'garbage\n');
    await eventually(() => {
      assert.deepEqual(events[2], { kind: 'remove', name: 'c2' });
    }, 2_000);

    await writeFile(join(dir, 'c2'), 'endpoints:\n- https://b:2379\n');
    await eventually(() => {
      assert.equal(events[3]?.kind, 'add');
    }, 2_000);
    await unlink(join(dir, 'c2'));
    await eventually(() => {
      assert.deepEqual(events[4], { kind: 'remove', name: 'c2' });
    }, 2_000);
    assert.equal(events.length, 5);
  });

  it('sees Kubernetes secret updates done by swapping the ..data symlink', async () => {
    // The layout of a mounted Secret: <key> -> ..data/<key>, ..data -> ..<timestamp>/
    await mkdir(join(dir, '..v1'));
    await writeFile(join(dir, '..v1', 'c2'), 'endpoints:\n- https://v1:2379\n');
    await writeFile(join(dir, '..v1', 'c2.etcd-client.crt'), 'cert');
    await symlink('..v1', join(dir, '..data'));
    await symlink('..data/c2', join(dir, 'c2'));
    await symlink('..data/c2.etcd-client.crt', join(dir, 'c2.etcd-client.crt'));
    await start();
    assert.deepEqual(events, [{ kind: 'add', name: 'c2', path: join(dir, 'c2') }]);

    await mkdir(join(dir, '..v2'));
    await writeFile(join(dir, '..v2', 'c2'), 'endpoints:\n- https://v2:2379\n');
    await writeFile(join(dir, '..v2', 'c2.etcd-client.crt'), 'cert');
    await symlink('..v2', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await rm(join(dir, '..v1'), { recursive: true });
    await eventually(() => {
      assert.deepEqual(events.slice(1), [{ kind: 'add', name: 'c2', path: join(dir, 'c2') }]);
    }, 2_000);

    // Key dropped from the Secret: the dangling symlink is not a config any more.
    await mkdir(join(dir, '..v3'));
    await symlink('..v3', join(dir, '..data_tmp'));
    await rename(join(dir, '..data_tmp'), join(dir, '..data'));
    await eventually(() => {
      assert.deepEqual(events.slice(2), [{ kind: 'remove', name: 'c2' }]);
    }, 2_000);
  });

  it('falls back to periodic rescans', async () => {
    await start({ rescanIntervalMs: 100, fsWatch: false });
    await writeFile(join(dir, 'c2'), 'endpoints:\n- https://a:2379\n');
    await eventually(() => {
      assert.deepEqual(events, [{ kind: 'add', name: 'c2', path: join(dir, 'c2') }]);
    }, 2_000);
  });

  it('ignores the local cluster and invalid names once, and reports them', async () => {
    await writeFile(join(dir, 'local'), 'endpoints:\n- https://a:2379\n');
    await writeFile(join(dir, 'UPPER'), 'endpoints:\n- https://a:2379\n');
    await writeFile(join(dir, 'x'.repeat(33)), 'endpoints:\n- https://a:2379\n');
    await start({ local: 'local', rescanIntervalMs: 50 });
    await delay(200);
    assert.deepEqual(events, [
      { kind: 'ignored', name: 'UPPER', why: 'invalid-name' },
      { kind: 'ignored', name: 'local', why: 'local' },
      { kind: 'ignored', name: 'x'.repeat(33), why: 'invalid-name' },
    ]);
    assert.deepEqual(watcher?.invalidConfigs(), [
      {
        name: 'UPPER',
        reason:
          "invalid cluster name: must consist of lower case alphanumeric characters and '-', and must start and end with an alphanumeric character",
      },
      { name: 'x'.repeat(33), reason: 'invalid cluster name: must not be more than 32 characters' },
    ]);
  });

  it('tolerates a missing directory', async () => {
    const sub = join(dir, 'sub');
    await start({ dir: sub, rescanIntervalMs: 50 });
    assert.equal(events.length, 0);
    await mkdir(sub);
    await writeFile(join(sub, 'c2'), 'endpoints:\n- https://a:2379\n');
    await eventually(() => {
      assert.ok(
        events.some((e) => e.kind === 'add' && e.name === 'c2'),
        "events.some((e) => e.kind === 'add' && e.name === 'c2')",
      );
    }, 2_000);
  });

  // Entries nobody can read as a file, root included (CI runs as root, where chmod 000
  // would not stop the read).
  it('skips entries that cannot be read as a file, warning about those named like a cluster', async () => {
    interface LogLine {
      cluster?: string;
      reason?: string;
      msg?: string;
    }
    const logged: LogLine[] = [];
    const log = pino(
      { level: 'warn' },
      { write: (line: string) => logged.push(JSON.parse(line) as LogLine) },
    );
    await writeFile(join(dir, 'c2'), 'endpoints:\n- https://a:2379\n');
    await mkdir(join(dir, 'c3'));
    await symlink(join(dir, 'missing'), join(dir, 'c4'));
    await start({ log });
    // The dangling symlink is what a key dropped from a Secret mount leaves: no warning.
    assert.deepEqual(events, [
      { kind: 'ignored', name: 'c3', why: 'unreadable' },
      { kind: 'add', name: 'c2', path: join(dir, 'c2') },
    ]);
    assert.deepEqual([...(watcher?.configs().keys() ?? [])], ['c2']);
    assert.deepEqual(
      logged.map((l) => [l.cluster, l.reason, l.msg]),
      [
        [
          'c3',
          'not a regular file',
          'ignoring clustermesh configuration entry that cannot be read as a file',
        ],
      ],
    );

    // Once the entry becomes a readable config it is picked up.
    await rm(join(dir, 'c3'), { recursive: true });
    await writeFile(join(dir, 'c3'), 'endpoints:\n- https://a:2379\n');
    await watcher?.rescan();
    assert.deepEqual([...(watcher?.configs().keys() ?? [])], ['c2', 'c3']);
  });

  it('emits nothing after stop', async () => {
    await start({ rescanIntervalMs: 20 });
    await watcher?.stop();
    await writeFile(join(dir, 'c2'), 'endpoints:\n- https://a:2379\n');
    await delay(150);
    assert.deepEqual(events, []);
  });
});
