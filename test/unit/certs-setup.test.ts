/**
 * `mesh enable` / `connect` / `disconnect` on clusters started by hand (plaintext records):
 * the files they write, and what they refuse. The TLS path runs in test/e2e/mesh-setup.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, readFile, readdir, rm } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { readClusterRecord, writeClusterRecord } from '../../src/localmesh/cluster-record.js';
import {
  configuredRemotes,
  connectClusters,
  disconnectClusters,
  enableCluster,
} from '../../src/localmesh/mesh-setup.js';
import { runCliCaptured } from '../support/cli.js';

let dir: string;
let state: string;

async function register(name: string, id: number, enable = true): Promise<void> {
  const configDir = join(dir, `${name}-config`);
  await mkdir(configDir, { recursive: true });
  const reg = {
    id,
    endpoint: `http://127.0.0.1:${String(23800 + id)}`,
    configDir,
    agents: [{ node: 'node-1', api: 'http://127.0.0.1:1' }],
  };
  await enableCluster(state, name, reg);
  if (!enable) {
    const rec = await readClusterRecord(state, name);
    await writeClusterRecord(state, { ...rec, enabled: false });
  }
}

before(async () => {
  dir = await mkdtemp(join(tmpdir(), 'certs-setup-'));
  state = join(dir, 'state');
  await register('cluster1', 1);
  await register('cluster2', 2);
  await register('cluster3', 3);
  await register('twin', 2);
  await register('off', 9, false);
});
after(async () => {
  await rm(dir, { recursive: true, force: true });
});

void describe('mesh setup on clusters started by hand', () => {
  it('connect writes each side into the other’s config directory', async () => {
    await connectClusters(state, 'cluster1', 'cluster2');
    assert.equal(
      await readFile(join(dir, 'cluster1-config', 'cluster2'), 'utf8'),
      'endpoints:\n  - http://127.0.0.1:23802\n',
    );
    assert.equal(
      await readFile(join(dir, 'cluster2-config', 'cluster1'), 'utf8'),
      'endpoints:\n  - http://127.0.0.1:23801\n',
    );
    assert.deepEqual(await configuredRemotes(await readClusterRecord(state, 'cluster1')), [
      'cluster2',
    ]);
  });

  it('disconnect removes exactly that pair', async () => {
    await connectClusters(state, 'cluster1', 'cluster3');
    await connectClusters(state, 'cluster2', 'cluster3');
    assert.equal(await disconnectClusters(state, 'cluster1', 'cluster3'), true);
    assert.deepEqual(await readdir(join(dir, 'cluster1-config')), ['cluster2']);
    assert.deepEqual(await readdir(join(dir, 'cluster3-config')), ['cluster2']);
    assert.deepEqual((await readdir(join(dir, 'cluster2-config'))).sort(), [
      'cluster1',
      'cluster3',
    ]);
    assert.equal(await disconnectClusters(state, 'cluster1', 'cluster3'), false);
  });

  it('refuses itself, a duplicate ID, a cluster not enabled, an unknown cluster', async () => {
    const refused = async (a: string, b: string, code: string, msg: RegExp): Promise<void> => {
      await assert.rejects(
        connectClusters(state, a, b),
        (err: unknown) => isClusterMeshError(err) && err.code === code && msg.test(err.message),
      );
    };
    await refused('cluster1', 'cluster1', ErrorCode.InvalidArgument, /to itself/);
    await refused('cluster2', 'twin', ErrorCode.InvalidArgument, /same cluster ID 2/);
    await refused(
      'cluster1',
      'off',
      ErrorCode.ClustermeshNotEnabled,
      /not enabled in cluster off: run "clustermesh mesh enable --cluster off" first/,
    );
    await refused(
      'cluster1',
      'nope',
      ErrorCode.ConfigNotFound,
      /cluster "nope" not found .*clusters: cluster1, cluster2, cluster3, off, twin/,
    );
  });

  it('the CLI: --context is --cluster; usage errors are one line, exit 2', async () => {
    const r = await runCliCaptured([
      'mesh',
      'connect',
      '--context',
      'cluster3',
      '--destination-context',
      'cluster1',
      '--state-dir',
      state,
    ]);
    assert.equal(r.code, 0, r.stderr);
    assert.equal(r.stdout, '✅ Connected cluster cluster3 <=> cluster1!\n');
    const missing = await runCliCaptured([
      'mesh',
      'connect',
      '--cluster',
      'cluster1',
      '--state-dir',
      state,
    ]);
    assert.equal(missing.code, 2);
    assert.equal(
      missing.stderr,
      "error: required option '--destination-cluster <name>' not specified\n",
    );
    const badId = await runCliCaptured([
      'mesh',
      'enable',
      '--cluster',
      'x',
      '--clustermesh-config',
      dir,
      '--cluster-id',
      '0',
      '--state-dir',
      state,
    ]);
    assert.equal(badId.code, 2);
    assert.match(badId.stderr, /^error: --cluster-id 0: expected 1\.\.511/);
  });
});
