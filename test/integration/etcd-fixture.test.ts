import assert from 'node:assert/strict';
import { readFile } from 'node:fs/promises';
import { join } from 'node:path';
import { after, describe, test } from 'node:test';
import { parse as parseYaml } from 'yaml';
import {
  createEtcdClient,
  startEtcd,
  startEtcdCluster,
  type EtcdCluster,
  type EtcdServer,
} from '../support/etcd.js';
import { createCA, issueCert } from '../support/tls.js';

const seenPids = new Set<number>();

function remember(pids: readonly number[]): void {
  for (const pid of pids) seenPids.add(pid);
}

function isAlive(pid: number): boolean {
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

// Every fixture has been destroyed by the suites' own `after` hooks when this runs.
after(() => {
  assert.ok(seenPids.size > 0, 'no etcd process was observed');
  for (const pid of seenPids) assert.equal(isAlive(pid), false, `etcd pid ${pid} still alive`);
});

void describe('single etcd', () => {
  let etcd: EtcdServer;

  after(async () => {
    await etcd.destroy();
  });

  void test('starts, serves, survives a restart and a wipe', async () => {
    etcd = await startEtcd();
    assert.match(etcd.clientUrl, /^http:\/\/127\.0\.0\.1:\d+$/);
    assert.deepEqual(etcd.endpoints, [etcd.clientUrl]);
    const firstPid = etcd.pid;
    assert.ok(firstPid !== undefined, 'firstPid !== undefined');
    remember(etcd.pids);

    const client = etcd.createClient();
    try {
      await client.put('fixture/key').value('v1');
      const before = await client.get('fixture/key').exec();
      assert.equal(before.kvs[0]?.value.toString(), 'v1');
      const clusterId = before.header.cluster_id;

      await etcd.restart();
      assert.notEqual(etcd.pid, firstPid);
      remember(etcd.pids);
      assert.equal(isAlive(firstPid), false);
      assert.equal(await client.get('fixture/key').string(), 'v1');
      const afterRestart = await client.get('fixture/key').exec();
      assert.equal(afterRestart.header.cluster_id, clusterId);

      await etcd.kill();
      assert.equal(etcd.running, false);
      await etcd.restart();
      remember(etcd.pids);
      assert.equal(await client.get('fixture/key').string(), 'v1');

      const port = new URL(etcd.clientUrl).port;
      await etcd.wipe();
      remember(etcd.pids);
      assert.equal(new URL(etcd.clientUrl).port, port);
      const wiped = await client.get('fixture/key').exec();
      assert.equal(wiped.kvs.length, 0);
      assert.notEqual(wiped.header.cluster_id, clusterId);
    } finally {
      client.close();
    }
  });

  void test('writes a plain client config', async () => {
    const path = join(etcd.baseDir, 'cfg', 'etcd-config.yaml');
    await etcd.writeClientConfig(path);
    const parsed: unknown = parseYaml(await readFile(path, 'utf8'));
    assert.deepEqual(parsed, { endpoints: [etcd.clientUrl] });
  });
});

void describe('TLS etcd', () => {
  let etcd: EtcdServer;

  after(async () => {
    await etcd.destroy();
  });

  void test('accepts the fixture client certificate and rejects a foreign one', async () => {
    etcd = await startEtcd({ tls: true });
    remember(etcd.pids);
    assert.match(etcd.clientUrl, /^https:\/\/localhost:\d+$/);
    const tls = etcd.tls;
    assert.ok(tls !== undefined, 'tls !== undefined');

    const client = etcd.createClient();
    try {
      await client.put('tls/key').value('secure');
      assert.equal(await client.get('tls/key').string(), 'secure');
    } finally {
      client.close();
    }

    const foreignCa = await createCA('foreign-ca');
    const foreign = await issueCert(foreignCa, { commonName: 'intruder', clientAuth: true });
    // Trusts etcd's CA, so only etcd's check of the client certificate can fail.
    const intruder = createEtcdClient(
      { endpoints: etcd.endpoints, tls: { ca: tls.ca, cert: foreign.cert, key: foreign.key } },
      { defaultCallOptions: () => ({ deadline: Date.now() + 3_000 }) },
    );
    try {
      await assert.rejects(intruder.get('tls/key').string());
    } finally {
      intruder.close();
    }

    const path = join(etcd.baseDir, 'etcd-config.yaml');
    await etcd.writeClientConfig(path);
    const parsed: unknown = parseYaml(await readFile(path, 'utf8'));
    assert.deepEqual(parsed, {
      endpoints: [etcd.clientUrl],
      'trusted-ca-file': tls.caFile,
      'cert-file': tls.certFile,
      'key-file': tls.keyFile,
    });
  });
});

void describe('3-member etcd cluster', () => {
  let cluster: EtcdCluster;

  after(async () => {
    await cluster.destroy();
  });

  void test('elects a leader and keeps serving after the leader stops', async () => {
    cluster = await startEtcdCluster(3);
    remember(cluster.pids);
    assert.equal(cluster.pids.length, 3);
    assert.equal(new Set(cluster.endpoints).size, 3);

    const leader = await cluster.leader();
    const client = cluster.createClient();
    try {
      await client.put('cluster/key').value('before');
    } finally {
      client.close();
    }

    await leader.stop();
    assert.equal(leader.running, false);
    const newLeader = await cluster.leader();
    assert.notEqual(newLeader.name, leader.name);

    // The fixture clients have no retry policy, so point this one at the survivors only: a call
    // routed to the stopped member would fail regardless of the cluster's health.
    const survivors = createEtcdClient({
      endpoints: cluster.members.filter((m) => m.running).map((m) => m.clientUrl),
      tls: cluster.tls,
    });
    try {
      await survivors.put('cluster/key').value('after');
      assert.equal(await survivors.get('cluster/key').string(), 'after');
    } finally {
      survivors.close();
    }

    await leader.restart();
    remember(cluster.pids);
    const rejoined = createEtcdClient(leader.target);
    try {
      assert.equal(await rejoined.get('cluster/key').string(), 'after');
    } finally {
      rejoined.close();
    }
  });
});
