/**
 * The agent's service table (`src/service/table.ts`) against the reference import
 * semantics (spec §6.3, `ServiceCache.correlateEndpoints`).
 */
import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import {
  makeClusterService,
  type ClusterService,
  type L4Addr,
  type PortConfiguration,
  type ServiceAffinity,
} from '../../src/keyspace/index.js';
import { ServiceTable, type LocalService, type TableFrontend } from '../../src/service/table.js';

const LOCAL = 'cluster1';
const ID = 'default/rebel-base';
const FRONTEND_IP = '172.20.0.10';
const HTTP: PortConfiguration = { http: { Protocol: 'TCP', Port: 80 } };
const BACKEND_HTTP: PortConfiguration = { http: { Protocol: 'TCP', Port: 8080 } };

function backendsOf(
  ips: readonly string[],
  ports = BACKEND_HTTP,
): Record<string, PortConfiguration> {
  return Object.fromEntries(ips.map((ip) => [ip, ports]));
}

function localService(
  backends: readonly string[],
  opts: {
    global?: boolean;
    affinity?: ServiceAffinity;
    type?: string;
    name?: string;
    frontends?: Record<string, PortConfiguration>;
    ports?: PortConfiguration;
  } = {},
): LocalService {
  return {
    service: makeClusterService({
      cluster: LOCAL,
      clusterID: 1,
      namespace: 'default',
      name: opts.name ?? 'rebel-base',
      frontends: opts.frontends ?? { [FRONTEND_IP]: HTTP },
      backends: backendsOf(backends, opts.ports),
      includeExternal: opts.global ?? true,
      shared: true,
    }),
    global: opts.global ?? true,
    affinity: opts.affinity ?? 'none',
    type: opts.type ?? 'ClusterIP',
  };
}

function remoteService(
  cluster: string,
  backends: readonly string[],
  opts: { shared?: boolean; name?: string; namespace?: string; ports?: PortConfiguration } = {},
): ClusterService {
  return makeClusterService({
    cluster,
    clusterID: Number(cluster.replace(/\D/g, '')) || 9,
    namespace: opts.namespace ?? 'default',
    name: opts.name ?? 'rebel-base',
    frontends: { '172.30.0.10': HTTP },
    backends: backendsOf(backends, opts.ports),
    includeExternal: true,
    shared: opts.shared ?? true,
  });
}

function only(frontends: readonly TableFrontend[]): TableFrontend {
  assert.equal(frontends.length, 1, `expected one frontend, got ${String(frontends.length)}`);
  const f = frontends[0];
  assert.ok(f !== undefined, 'f !== undefined');
  return f;
}

/** `cluster ip` of every backend of the service's single frontend, sorted. */
function backendView(table: ServiceTable, id = ID): string[] {
  return only(table.frontendsOf(id))
    .backends.map((b) => `${b.cluster} ${b.ip}`)
    .sort();
}

describe('ServiceTable: which backends are merged', () => {
  it('uses local backends of a non-global Service, never remote ones', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1', '10.1.0.2'], { global: false }));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1', 'cluster1 10.1.0.2']);
    const f = only(t.frontendsOf(ID));
    assert.equal(f.affinity, 'none');
    assert.equal(f.frontend, '172.20.0.10:80/TCP');
    assert.equal(f.ip, FRONTEND_IP);
    assert.equal(f.port, 80);
    assert.equal(f.protocol, 'TCP');
    assert.equal(f.portName, 'http');
    assert.equal(f.type, 'ClusterIP');
    assert.equal(f.namespace, 'default');
    assert.equal(f.name, 'rebel-base');
    const b = f.backends.find((x) => x.ip === '10.1.0.1');
    assert.deepEqual(b, {
      address: '10.1.0.1:8080/TCP',
      ip: '10.1.0.1',
      port: 8080,
      cluster: LOCAL,
      state: 'active',
      preferred: false,
    });
  });

  it('merges remote backends of a locally global Service shared by the remote', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1', '10.2.0.2']));
    t.upsertRemote(remoteService('cluster3', ['10.3.0.1']));
    assert.deepEqual(backendView(t), [
      'cluster1 10.1.0.1',
      'cluster2 10.2.0.1',
      'cluster2 10.2.0.2',
      'cluster3 10.3.0.1',
    ]);
    const remote = only(t.frontendsOf(ID)).backends.find((b) => b.ip === '10.2.0.2');
    assert.equal(remote?.address, '10.2.0.2:8080/TCP');
    assert.equal(remote.cluster, 'cluster2');
  });

  it('orders backends local first, then remote clusters by name', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertRemote(remoteService('cluster3', ['10.3.0.1']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    t.upsertLocal(localService(['10.1.0.1']));
    assert.deepEqual(
      only(t.frontendsOf(ID)).backends.map((b) => b.cluster),
      ['cluster1', 'cluster2', 'cluster3'],
    );
  });

  it('takes remote backends only while the local Service stays global', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    assert.equal(only(t.frontendsOf(ID)).backends.length, 2);
    t.upsertLocal(localService(['10.1.0.1'], { global: false }));
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1']);
    // The remote entry is still known: becoming global again brings it back.
    assert.equal(t.numGlobalServices, 1);
    t.upsertLocal(localService(['10.1.0.1']));
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1', 'cluster2 10.2.0.1']);
  });

  it('treats a non-shared remote upsert as a deletion', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    assert.equal(t.numGlobalServices, 1);
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1'], { shared: false }));
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1']);
    assert.equal(t.numGlobalServices, 0);
  });

  it('ignores a non-shared remote service it never knew', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    const events: string[] = [];
    t.onChange((id) => events.push(id));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1'], { shared: false }));
    assert.deepEqual(events, []);
    assert.equal(t.numGlobalServices, 0);
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1']);
  });

  it('gives a remote-only service (no local Service) no frontend', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    assert.deepEqual(t.frontendsOf(ID), []);
    assert.deepEqual(t.frontends(), []);
    assert.equal(t.lookup('172.30.0.10', 80), undefined);
    // It is still a global service of the mesh.
    assert.equal(t.numGlobalServices, 1);
  });

  it('drops remote backends when the local Service is deleted, keeps the remote entry', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    t.deleteLocal('default', 'rebel-base');
    assert.deepEqual(t.frontendsOf(ID), []);
    assert.deepEqual(t.frontends(), []);
    assert.equal(t.numGlobalServices, 1);
  });

  it('ignores remote entries that carry the local cluster name', () => {
    const t = new ServiceTable(LOCAL);
    const events: string[] = [];
    t.onChange((id) => events.push(id));
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService(LOCAL, ['10.9.0.1']));
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1']);
    assert.equal(t.numGlobalServices, 0);
    assert.deepEqual(events, [ID]);
  });

  it('replaces a remote cluster entry on update and removes it on delete', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1', '10.2.0.2']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.2', '10.2.0.3']));
    assert.deepEqual(backendView(t), [
      'cluster1 10.1.0.1',
      'cluster2 10.2.0.2',
      'cluster2 10.2.0.3',
    ]);
    t.deleteRemote('cluster2', 'default', 'rebel-base');
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1']);
  });
});

describe('ServiceTable: preferred marks follow the local affinity', () => {
  const build = (affinity: ServiceAffinity, global = true): TableFrontend => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1', '10.1.0.2'], { affinity, global }));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    return only(t.frontendsOf(ID));
  };
  const marks = (f: TableFrontend): string[] =>
    f.backends.map((b) => `${b.cluster} ${b.ip} ${b.preferred ? 'preferred' : '-'}`);

  it('local: local backends preferred, remote ones not', () => {
    const f = build('local');
    assert.equal(f.affinity, 'local');
    assert.deepEqual(marks(f), [
      'cluster1 10.1.0.1 preferred',
      'cluster1 10.1.0.2 preferred',
      'cluster2 10.2.0.1 -',
    ]);
  });

  it('remote: remote backends preferred, local ones not', () => {
    const f = build('remote');
    assert.equal(f.affinity, 'remote');
    assert.deepEqual(marks(f), [
      'cluster1 10.1.0.1 -',
      'cluster1 10.1.0.2 -',
      'cluster2 10.2.0.1 preferred',
    ]);
  });

  it('none: nothing preferred', () => {
    const f = build('none');
    assert.equal(f.affinity, 'none');
    assert.ok(
      f.backends.every((b) => !b.preferred),
      'f.backends.every((b) => !b.preferred)',
    );
    assert.equal(f.backends.length, 3);
  });

  it('a non-global Service has no affinity, whatever it was given', () => {
    const f = build('local', false);
    assert.equal(f.affinity, 'none');
    assert.deepEqual(marks(f), ['cluster1 10.1.0.1 -', 'cluster1 10.1.0.2 -']);
  });
});

describe('ServiceTable: conflicting backend IPs', () => {
  it('skips a remote backend whose IP is a local backend and counts it once', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1', '10.9.9.9']));
    t.upsertRemote(remoteService('cluster2', ['10.9.9.9', '10.2.0.1']));
    assert.deepEqual(backendView(t), [
      'cluster1 10.1.0.1',
      'cluster1 10.9.9.9',
      'cluster2 10.2.0.1',
    ]);
    assert.equal(t.conflictCount, 1);
    // Reading again (frontendsOf, frontends, lookup) does not count it again.
    for (let i = 0; i < 5; i++) {
      t.frontendsOf(ID);
      t.frontends();
      t.lookup(FRONTEND_IP, 80);
    }
    assert.equal(t.conflictCount, 1);
    // Nor does re-sending the same remote entry.
    t.upsertRemote(remoteService('cluster2', ['10.9.9.9', '10.2.0.1']));
    assert.deepEqual(backendView(t), [
      'cluster1 10.1.0.1',
      'cluster1 10.9.9.9',
      'cluster2 10.2.0.1',
    ]);
    assert.equal(t.conflictCount, 1);
  });

  it('keeps the first remote cluster (by name) when two remotes claim an IP', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService('cluster3', ['10.7.7.7']));
    t.upsertRemote(remoteService('cluster2', ['10.7.7.7']));
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1', 'cluster2 10.7.7.7']);
    assert.equal(t.conflictCount, 1);
  });

  it('counts distinct conflicts (service, IP, cluster)', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1', '10.1.0.2']));
    t.upsertRemote(remoteService('cluster2', ['10.1.0.1', '10.1.0.2']));
    t.upsertRemote(remoteService('cluster3', ['10.1.0.1']));
    t.frontendsOf(ID);
    t.frontendsOf(ID);
    assert.equal(t.conflictCount, 3);
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1', 'cluster1 10.1.0.2']);
  });

  it('has no conflict when the local Service is not global', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.9.9.9'], { global: false }));
    t.upsertRemote(remoteService('cluster2', ['10.9.9.9']));
    t.frontendsOf(ID);
    assert.equal(t.conflictCount, 0);
  });
});

describe('ServiceTable: port mapping', () => {
  const twoPorts: PortConfiguration = {
    http: { Protocol: 'TCP', Port: 80 },
    dns: { Protocol: 'UDP', Port: 53 },
  };

  it('maps each frontend port to the backend port of the same name', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(
      localService(['10.1.0.1'], {
        frontends: { [FRONTEND_IP]: twoPorts },
        ports: { http: { Protocol: 'TCP', Port: 8080 }, dns: { Protocol: 'UDP', Port: 5353 } },
      }),
    );
    t.upsertRemote(
      remoteService('cluster2', ['10.2.0.1'], {
        ports: { http: { Protocol: 'TCP', Port: 9090 }, dns: { Protocol: 'UDP', Port: 53 } },
      }),
    );
    const fs = t.frontendsOf(ID);
    assert.equal(fs.length, 2);
    const http = fs.find((f) => f.portName === 'http');
    const dns = fs.find((f) => f.portName === 'dns');
    assert.equal(http?.frontend, '172.20.0.10:80/TCP');
    assert.deepEqual(
      http.backends.map((b) => b.address),
      ['10.1.0.1:8080/TCP', '10.2.0.1:9090/TCP'],
    );
    assert.equal(dns?.frontend, '172.20.0.10:53/UDP');
    assert.deepEqual(
      dns.backends.map((b) => b.address),
      ['10.1.0.1:5353/UDP', '10.2.0.1:53/UDP'],
    );
  });

  it('does not use a backend that lacks the frontend port name', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(
      remoteService('cluster2', ['10.2.0.1'], { ports: { web: { Protocol: 'TCP', Port: 80 } } }),
    );
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1']);
  });

  it('does not use a backend whose port has another protocol', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(
      remoteService('cluster2', ['10.2.0.1'], { ports: { http: { Protocol: 'UDP', Port: 8080 } } }),
    );
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1']);
  });

  it('maps unnamed ports to unnamed ports', () => {
    const t = new ServiceTable(LOCAL);
    const unnamed: L4Addr = { Protocol: 'TCP', Port: 80 };
    t.upsertLocal(
      localService(['10.1.0.1'], {
        frontends: { [FRONTEND_IP]: { '': unnamed } },
        ports: { '': { Protocol: 'TCP', Port: 8080 } },
      }),
    );
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1'], { ports: { '': unnamed } }));
    const f = only(t.frontendsOf(ID));
    assert.equal(f.portName, '');
    assert.deepEqual(
      f.backends.map((b) => b.address),
      ['10.1.0.1:8080/TCP', '10.2.0.1:80/TCP'],
    );
  });

  it('gives a frontend with no matching backend an empty backend list', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1'], { ports: { other: { Protocol: 'TCP', Port: 1 } } }));
    assert.deepEqual(only(t.frontendsOf(ID)).backends, []);
  });
});

describe('ServiceTable: frontends, IDs and lookup', () => {
  it('keeps frontend IDs stable across updates', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertLocal(
      localService(['10.1.0.5'], { name: 'other', frontends: { '172.20.0.11': HTTP } }),
    );
    const before = new Map(t.frontends().map((f) => [f.frontend, f.id]));
    assert.equal(before.size, 2);
    assert.equal(new Set(before.values()).size, 2);
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    t.upsertLocal(localService(['10.1.0.1', '10.1.0.2'], { affinity: 'local' }));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.9']));
    t.deleteRemote('cluster2', 'default', 'rebel-base');
    const after = new Map(t.frontends().map((f) => [f.frontend, f.id]));
    assert.deepEqual(after, before);
    // Deleted and re-created: the frontend address keeps its ID.
    const id = before.get('172.20.0.10:80/TCP');
    t.deleteLocal('default', 'rebel-base');
    assert.equal(t.frontends().length, 1);
    t.upsertLocal(localService(['10.1.0.1']));
    assert.equal(only(t.frontendsOf(ID)).id, id);
  });

  it('lists every frontend of every local Service sorted by ID', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.5'], { name: 'zeta', frontends: { '172.20.0.2': HTTP } }));
    t.upsertLocal(
      localService(['10.1.0.1'], { frontends: { '172.20.0.1': HTTP, 'fd00::1': HTTP } }),
    );
    const fs = t.frontends();
    assert.deepEqual(
      fs.map((f) => f.id),
      [...fs.map((f) => f.id)].sort((a, b) => a - b),
    );
    assert.deepEqual(fs.map((f) => f.frontend).sort(), [
      '172.20.0.1:80/TCP',
      '172.20.0.2:80/TCP',
      '[fd00::1]:80/TCP',
    ]);
  });

  it('formats IPv6 frontends and backends as [ip]:port/PROTO', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['fd00:1::1'], { frontends: { 'fd00::10': HTTP } }));
    t.upsertRemote(remoteService('cluster2', ['fd00:2::1']));
    const f = only(t.frontendsOf(ID));
    assert.equal(f.frontend, '[fd00::10]:80/TCP');
    assert.equal(f.ip, 'fd00::10');
    assert.deepEqual(
      f.backends.map((b) => b.address),
      ['[fd00:1::1]:8080/TCP', '[fd00:2::1]:8080/TCP'],
    );
    assert.equal(t.lookup('fd00::10', 80, 'TCP')?.id, f.id);
  });

  it('looks a frontend up by ip, port and protocol', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(
      localService(['10.1.0.1'], {
        frontends: {
          [FRONTEND_IP]: {
            http: { Protocol: 'TCP', Port: 80 },
            dns: { Protocol: 'UDP', Port: 53 },
          },
        },
        ports: { http: { Protocol: 'TCP', Port: 8080 }, dns: { Protocol: 'UDP', Port: 53 } },
      }),
    );
    assert.equal(t.lookup(FRONTEND_IP, 80)?.portName, 'http');
    assert.equal(t.lookup(FRONTEND_IP, 80, 'TCP')?.portName, 'http');
    assert.equal(t.lookup(FRONTEND_IP, 53, 'UDP')?.portName, 'dns');
    assert.equal(t.lookup(FRONTEND_IP, 53, 'TCP'), undefined);
    assert.equal(t.lookup(FRONTEND_IP, 81), undefined);
    assert.equal(t.lookup('172.20.0.99', 80), undefined);
  });

  it('carries the Service type', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1'], { type: 'NodePort' }));
    assert.equal(only(t.frontendsOf(ID)).type, 'NodePort');
  });
});

describe('ServiceTable: counters and events', () => {
  it('counts distinct ns/name among remote entries as global services', () => {
    const t = new ServiceTable(LOCAL);
    assert.equal(t.numGlobalServices, 0);
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    t.upsertRemote(remoteService('cluster3', ['10.3.0.1']));
    assert.equal(t.numGlobalServices, 1);
    t.upsertRemote(remoteService('cluster2', ['10.2.0.2'], { name: 'x-wing' }));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.3'], { namespace: 'other' }));
    assert.equal(t.numGlobalServices, 3);
    // A local Service does not count; nor does an update of a known entry.
    t.upsertLocal(localService(['10.1.0.1'], { name: 'tie-fighter' }));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.9']));
    assert.equal(t.numGlobalServices, 3);
  });

  it('removes a global service when its last cluster is deleted', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    t.upsertRemote(remoteService('cluster3', ['10.3.0.1']));
    t.deleteRemote('cluster2', 'default', 'rebel-base');
    assert.equal(t.numGlobalServices, 1);
    t.deleteRemote('cluster3', 'default', 'rebel-base');
    assert.equal(t.numGlobalServices, 0);
    // Deleting again (or an unknown one) is a no-op.
    t.deleteRemote('cluster3', 'default', 'rebel-base');
    t.deleteRemote('cluster9', 'default', 'nothing');
    assert.equal(t.numGlobalServices, 0);
    // A later entry for the same name starts afresh.
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService('cluster3', ['10.3.0.7']));
    assert.deepEqual(backendView(t), ['cluster1 10.1.0.1', 'cluster3 10.3.0.7']);
    assert.equal(t.numGlobalServices, 1);
  });

  it('calls onChange with ns/name on every change, and not for no-ops', () => {
    const t = new ServiceTable(LOCAL);
    const events: string[] = [];
    const off = t.onChange((id) => events.push(id));
    t.upsertLocal(localService(['10.1.0.1']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1']));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1'], { namespace: 'empire', name: 'tie' }));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1'], { shared: false }));
    t.deleteRemote('cluster2', 'empire', 'tie');
    t.deleteRemote('cluster2', 'empire', 'tie');
    t.deleteLocal('default', 'rebel-base');
    t.deleteLocal('default', 'rebel-base');
    assert.deepEqual(events, [ID, ID, 'empire/tie', ID, 'empire/tie', ID]);
    off();
    t.upsertLocal(localService(['10.1.0.1']));
    assert.equal(events.length, 6);
  });

  it('sees the new state from inside the listener', () => {
    const t = new ServiceTable(LOCAL);
    t.upsertLocal(localService(['10.1.0.1']));
    const seen: number[] = [];
    t.onChange((id) => seen.push(only(t.frontendsOf(id)).backends.length));
    t.upsertRemote(remoteService('cluster2', ['10.2.0.1', '10.2.0.2']));
    t.deleteRemote('cluster2', 'default', 'rebel-base');
    assert.deepEqual(seen, [3, 1]);
  });
});
