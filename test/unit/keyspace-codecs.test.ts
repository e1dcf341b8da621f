import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import {
  apiserverClusterConfig,
  clusterLabel,
  clusterServiceKeyName,
  decodeClusterConfig,
  decodeClusterService,
  decodeIdentity,
  decodeIPIdentityPair,
  decodeMCSAPIServiceSpec,
  decodeNode,
  encodeClusterConfig,
  encodeClusterService,
  encodeIdentity,
  encodeIPIdentityPair,
  encodeMCSAPIServiceSpec,
  encodeNode,
  globalServiceSettings,
  ipAndMaskFor,
  ipIdentityPairKeyName,
  kvstoremeshClusterConfig,
  makeClusterConfig,
  makeClusterService,
  makeNode,
  nodeFullname,
  parseIdentityKeySuffix,
  remoteIPCacheIdentity,
  serviceExportsStatus,
  validateRemoteClusterConfig,
  validateRemoteIdentity,
  validateRemoteIPCacheIdentity,
  type IPIdentityPair,
  type MCSAPIServiceSpec,
} from '../../src/keyspace/index.js';

function rejects(fn: () => unknown, message: RegExp, code: ErrorCode = ErrorCode.InvalidEntry) {
  assert.throws(fn, (err: unknown) => {
    assert.ok(isClusterMeshError(err, code), `expected ${code}, got ${String(err)}`);
    assert.match(err.message, message);
    return true;
  });
}

// ---------------------------------------------------------------------------------

const REBEL_BASE_JSON =
  '{"cluster":"c2","namespace":"default","name":"rebel-base","frontends":{"10.96.173.113":{"":{"Protocol":"TCP","Port":80}}},"backends":{"10.2.0.61":{"":{"Protocol":"TCP","Port":80}}},"hostnames":{},"labels":{},"selector":{"name":"rebel-base"},"includeExternal":true,"shared":true,"clusterID":2}';

const rebelBase = makeClusterService({
  cluster: 'c2',
  namespace: 'default',
  name: 'rebel-base',
  frontends: { '10.96.173.113': { '': { Protocol: 'TCP', Port: 80 } } },
  backends: { '10.2.0.61': { '': { Protocol: 'TCP', Port: 80 } } },
  selector: { name: 'rebel-base' },
  includeExternal: true,
  shared: true,
  clusterID: 2,
});

void describe('ClusterService codec', () => {
  void it('encodes the spec example byte for byte', () => {
    assert.equal(encodeClusterService(rebelBase), REBEL_BASE_JSON);
    assert.equal(clusterServiceKeyName(rebelBase), 'c2/default/rebel-base');
  });

  void it('decodes the spec example and round-trips', () => {
    const svc = decodeClusterService('c2/default/rebel-base', REBEL_BASE_JSON, {
      localClusterId: 1,
    });
    assert.deepEqual(svc, rebelBase);
    assert.equal(encodeClusterService(svc), REBEL_BASE_JSON);
  });

  void it('sorts map keys bytewise like Go and escapes like Go', () => {
    const svc = makeClusterService({
      cluster: 'c1',
      namespace: 'ns',
      name: 's',
      backends: {
        '10.0.0.2': { https: { Protocol: 'TCP', Port: 443 }, http: { Protocol: 'TCP', Port: 80 } },
        '10.0.0.10': { '': { Protocol: 'UDP', Port: 53 } },
      },
      labels: { '2': 'b', '10': 'a', app: '<a&b>' },
      clusterID: 1,
    });
    assert.equal(
      encodeClusterService(svc),
      '{"cluster":"c1","namespace":"ns","name":"s","frontends":{},"backends":{"10.0.0.10":{"":{"Protocol":"UDP","Port":53}},"10.0.0.2":{"http":{"Protocol":"TCP","Port":80},"https":{"Protocol":"TCP","Port":443}}},"hostnames":{},"labels":{"10":"a","2":"b","app":"\\u003ca\\u0026b\\u003e"},"selector":{},"includeExternal":false,"shared":false,"clusterID":1}',
    );
    assert.deepEqual(
      decodeClusterService('c1/ns/s', encodeClusterService(svc), { localClusterId: 1 }),
      svc,
    );
  });

  void it('accepts null maps, missing hostnames and unknown fields (newer releases)', () => {
    const svc = decodeClusterService(
      'c2/ns/s',
      '{"cluster":"c2","namespace":"ns","name":"s","frontends":null,"backends":{"fd00::1":{"":{"Protocol":"TCP","Port":80}}},"zones":{"fd00::1":{"zone":"a","forZones":[{"name":"a"}]}},"labels":null,"selector":null,"includeExternal":false,"shared":true,"clusterID":2,"somethingNew":[1]}',
    );
    assert.deepEqual(svc.frontends, {});
    assert.deepEqual(svc.hostnames, {});
    assert.deepEqual(svc.zones, { 'fd00::1': { zone: 'a', forZones: [{ name: 'a' }] } });
    assert.equal(
      encodeClusterService(svc),
      '{"cluster":"c2","namespace":"ns","name":"s","frontends":{},"backends":{"fd00::1":{"":{"Protocol":"TCP","Port":80}}},"hostnames":{},"zones":{"fd00::1":{"zone":"a","forZones":[{"name":"a"}]}},"labels":{},"selector":{},"includeExternal":false,"shared":true,"clusterID":2}',
    );
  });

  void it('rejects entries that disagree with their key', () => {
    rejects(
      () => decodeClusterService('c2/default/other', REBEL_BASE_JSON),
      /namespaced name does not match key: got default\/rebel-base, expected default\/other/,
    );
    rejects(
      () => decodeClusterService('c3/default/rebel-base', REBEL_BASE_JSON),
      /does not match key/,
    );
  });

  void it('rejects bad IP keys', () => {
    const bad = (where: 'frontends' | 'backends', ip: string) =>
      REBEL_BASE_JSON.replace(where === 'frontends' ? '10.96.173.113' : '10.2.0.61', ip);
    rejects(
      () => decodeClusterService('c2/default/rebel-base', bad('frontends', 'not-an-ip')),
      /invalid frontend address "not-an-ip"/,
    );
    rejects(
      () => decodeClusterService('c2/default/rebel-base', bad('backends', '10.2.0.256')),
      /invalid backend address "10.2.0.256"/,
    );
    // Go's netip.ParseAddr takes a zone only on IPv6, and never an empty one.
    decodeClusterService('c2/default/rebel-base', bad('backends', 'fe80::1%eth0'));
    rejects(
      () => decodeClusterService('c2/default/rebel-base', bad('backends', '10.2.0.61%eth0')),
      /invalid backend address/,
    );
    rejects(
      () => decodeClusterService('c2/default/rebel-base', bad('backends', 'fe80::1%')),
      /invalid backend address/,
    );
  });

  void it('rejects malformed values, missing names and invalid cluster IDs', () => {
    rejects(() => decodeClusterService('c2/default/rebel-base', '{"cluster":'), /malformed JSON/);
    rejects(() => decodeClusterService('c2/default/rebel-base', '[]'), /expected object/);
    rejects(
      () =>
        decodeClusterService(
          'c2/default/rebel-base',
          REBEL_BASE_JSON.replace('"cluster":"c2",', ''),
        ),
      /cluster is unset/,
    );
    rejects(
      () =>
        decodeClusterService(
          'c2/default/rebel-base',
          REBEL_BASE_JSON.replace('"name":"rebel-base",', ''),
        ),
      /name is unset/,
    );
    rejects(
      () =>
        decodeClusterService(
          'c2/default/rebel-base',
          REBEL_BASE_JSON.replace('"clusterID":2', '"clusterID":0'),
          {
            localClusterId: 1,
          },
        ),
      /ClusterID 0 is reserved/,
    );
    rejects(
      () =>
        decodeClusterService(
          'c2/default/rebel-base',
          REBEL_BASE_JSON.replace('"clusterID":2', '"clusterID":256'),
        ),
      /ClusterID > 255 is not supported/,
    );
    rejects(
      () =>
        decodeClusterService(
          'c2/default/rebel-base',
          REBEL_BASE_JSON.replace('"Port":80', '"Port":70000'),
        ),
      /Port/,
    );
  });

  void it('applies the anti-spoofing options', () => {
    rejects(
      () =>
        decodeClusterService('c2/default/rebel-base', REBEL_BASE_JSON, { expectedCluster: 'c3' }),
      /unexpected cluster name: got c2, expected c3/,
    );
    rejects(
      () =>
        decodeClusterService('c2/default/rebel-base', REBEL_BASE_JSON, { expectedClusterId: 3 }),
      /unexpected cluster ID: got 2, expected 3/,
    );
    decodeClusterService('c2/default/rebel-base', REBEL_BASE_JSON, {
      expectedCluster: 'c2',
      expectedClusterId: 2,
    });
  });

  void it('reads the global-service annotations', () => {
    assert.deepEqual(globalServiceSettings({ 'service.cilium.io/global': 'True' }), {
      global: true,
      shared: true,
      affinity: 'none',
    });
    assert.deepEqual(
      globalServiceSettings({
        'io.cilium/global-service': 'true',
        'io.cilium/shared-service': 'false',
        'service.cilium.io/affinity': 'Local',
      }),
      { global: true, shared: false, affinity: 'local' },
    );
    assert.deepEqual(
      globalServiceSettings({
        'service.cilium.io/global': 'false',
        'io.cilium/global-service': 'true',
      }),
      { global: false, shared: false, affinity: 'none' },
    );
    assert.deepEqual(globalServiceSettings(undefined), {
      global: false,
      shared: false,
      affinity: 'none',
    });
  });
});

// ---------------------------------------------------------------------------------

const NODE_A_JSON =
  '{"Name":"node-a","Cluster":"c2","IPAddresses":[{"Type":"InternalIP","IP":"172.18.0.3"},{"Type":"CiliumInternalIP","IP":"10.2.0.17"}],"IPv4AllocCIDR":{"IP":"10.2.0.0","Mask":"////AA=="},"IPv4SecondaryAllocCIDRs":null,"IPv6AllocCIDR":null,"IPv6SecondaryAllocCIDRs":null,"IPv4HealthIP":"10.2.0.40","IPv6HealthIP":"","IPv4IngressIP":"","IPv6IngressIP":"","ClusterID":2,"Source":"custom-resource","EncryptionKey":0,"Labels":{"kubernetes.io/hostname":"node-a"},"Annotations":null,"NodeIdentity":0,"WireguardPubKey":"","BootID":""}';

const nodeA = makeNode({
  Name: 'node-a',
  Cluster: 'c2',
  IPAddresses: [
    { Type: 'InternalIP', IP: '172.18.0.3' },
    { Type: 'CiliumInternalIP', IP: '10.2.0.17' },
  ],
  IPv4AllocCIDR: '10.2.0.0/24',
  IPv4HealthIP: '10.2.0.40',
  ClusterID: 2,
  Source: 'custom-resource',
  Labels: { 'kubernetes.io/hostname': 'node-a' },
});

void describe('Node codec', () => {
  void it('encodes in Go field order with Go CIDR objects', () => {
    assert.equal(encodeNode(nodeA), NODE_A_JSON);
  });

  void it('round-trips', () => {
    const decoded = decodeNode('c2/node-a', NODE_A_JSON, { localClusterId: 1 });
    assert.deepEqual(decoded, nodeA);
    assert.equal(encodeNode(decoded), NODE_A_JSON);
    assert.equal(nodeFullname(decoded), 'c2/node-a');
  });

  void it('encodes IPv6, secondary CIDRs, annotations and BootID', () => {
    const node = makeNode({
      Name: 'n',
      Cluster: 'c1',
      IPAddresses: [{ Type: 'InternalIP', IP: 'FD00:0:0::0001' }],
      IPv4AllocCIDR: '10.1.0.9/24',
      IPv4SecondaryAllocCIDRs: ['10.9.0.0/16'],
      IPv6AllocCIDR: 'f00d::a0f:0:0:0/112',
      IPv6HealthIP: 'f00d::a0f:0:0:5',
      ClusterID: 1,
      Annotations: { 'network.cilium.io/wg-pub-key': 'abc' },
      BootID: 'b1',
    });
    const json = encodeNode(node);
    assert.equal(
      json,
      '{"Name":"n","Cluster":"c1","IPAddresses":[{"Type":"InternalIP","IP":"fd00::1"}],"IPv4AllocCIDR":{"IP":"10.1.0.0","Mask":"////AA=="},"IPv4SecondaryAllocCIDRs":[{"IP":"10.9.0.0","Mask":"//8AAA=="}],"IPv6AllocCIDR":{"IP":"f00d::a0f:0:0:0","Mask":"//////////////////8AAA=="},"IPv6SecondaryAllocCIDRs":null,"IPv4HealthIP":"","IPv6HealthIP":"f00d::a0f:0:0:5","IPv4IngressIP":"","IPv6IngressIP":"","ClusterID":1,"Source":"","EncryptionKey":0,"Labels":null,"Annotations":{"network.cilium.io/wg-pub-key":"abc"},"NodeIdentity":0,"WireguardPubKey":"","BootID":"b1"}',
    );
    const back = decodeNode('c1/n', json, { localClusterId: 1 });
    assert.equal(back.IPv4AllocCIDR, '10.1.0.0/24');
    assert.deepEqual(back.IPv4SecondaryAllocCIDRs, ['10.9.0.0/16']);
    assert.equal(back.IPv6AllocCIDR, 'f00d::a0f:0:0:0/112');
    assert.equal(back.BootID, 'b1');
  });

  void it('decodes an older release value with missing fields (reference etcd dump)', () => {
    const node = decodeNode(
      'default/k8s-node1',
      '{"Name":"k8s-node1","Cluster":"default","IPAddresses":[{"Type":"InternalIP", "IP":"10.5.1.132"},{"Type":"CiliumInternalIP", "IP":"10.6.6.71"}],"IPv4AllocCIDR":{"IP":"10.6.6.0", "Mask":"////AA=="},"IPv6AllocCIDR":null,"IPv4HealthIP":"10.6.6.79","IPv6HealthIP":"","ClusterID":0,"Source":"local","EncryptionKey":0}',
    );
    assert.equal(node.IPv4AllocCIDR, '10.6.6.0/24');
    assert.deepEqual(node.Labels, {});
    assert.equal(node.IPv4IngressIP, '');
    assert.equal(nodeFullname(node), 'k8s-node1');
  });

  void it('accepts the string CIDR form and unknown fields', () => {
    const node = decodeNode(
      'c2/node-a',
      '{"Name":"node-a","Cluster":"c2","IPAddresses":[{"Type":"InternalIP","IP":"172.18.0.3"},{"Type":"CiliumInternalIP","IP":"10.2.0.17"}],"IPv4AllocCIDR":"10.2.0.0/24","IPv4HealthIP":"10.2.0.40","ClusterID":2,"Source":"custom-resource","EncryptionKey":0,"Labels":{"kubernetes.io/hostname":"node-a"},"NodeIdentity":0,"WireguardPubKey":"","SomeFutureField":{"x":1}}',
      { localClusterId: 1 },
    );
    assert.deepEqual(node, nodeA);
  });

  void it('rejects a wrong key suffix', () => {
    rejects(
      () => decodeNode('c2/node-b', NODE_A_JSON),
      /name does not match key: got node-a, expected node-b/,
    );
    rejects(() => decodeNode('node-a', NODE_A_JSON), /does not match key/);
  });

  void it('rejects invalid cluster IDs unless equal to the local one', () => {
    const zero = NODE_A_JSON.replace('"ClusterID":2', '"ClusterID":0');
    rejects(() => decodeNode('c2/node-a', zero, { localClusterId: 1 }), /ClusterID 0 is reserved/);
    decodeNode('c2/node-a', zero, { localClusterId: 0 });
    const big = NODE_A_JSON.replace('"ClusterID":2', '"ClusterID":300');
    rejects(() => decodeNode('c2/node-a', big), /ClusterID > 255 is not supported/);
    decodeNode('c2/node-a', big, { maxConnectedClusters: 511 });
    rejects(
      () => decodeNode('c2/node-a', NODE_A_JSON.replace('"ClusterID":2', '"ClusterID":-1')),
      /ClusterID/,
    );
  });

  void it('rejects malformed values', () => {
    rejects(() => decodeNode('c2/node-a', 'not json'), /malformed JSON/);
    rejects(() => decodeNode('c2/node-a', 'null'), /expected object/);
    rejects(
      () => decodeNode('c2/node-a', NODE_A_JSON.replace('"Name":"node-a",', '')),
      /name is unset/,
    );
    rejects(
      () => decodeNode('c2/node-a', NODE_A_JSON.replace('172.18.0.3', '172.18.0')),
      /invalid IP address/,
    );
    rejects(
      () => decodeNode('c2/node-a', NODE_A_JSON.replace('"Mask":"////AA=="', '"Mask":"/wD/AA=="')),
      /IPv4AllocCIDR: invalid CIDR/,
    );
    rejects(
      () =>
        decodeNode('c2/node-a', NODE_A_JSON.replace('"EncryptionKey":0', '"EncryptionKey":256')),
      /EncryptionKey/,
    );
    rejects(
      () => decodeNode('c2/node-a', NODE_A_JSON.replace('"Cluster":"c2"', '"Cluster":2')),
      /Cluster/,
    );
  });

  void it('applies the anti-spoofing options', () => {
    rejects(
      () => decodeNode('c2/node-a', NODE_A_JSON, { expectedCluster: 'c3' }),
      /unexpected cluster name: got c2, expected c3/,
    );
    rejects(
      () => decodeNode('c2/node-a', NODE_A_JSON, { expectedClusterId: 7 }),
      /unexpected cluster ID: got 2, expected 7/,
    );
  });

  void it('refuses to encode invalid addresses', () => {
    rejects(
      () => encodeNode({ ...nodeA, IPv4HealthIP: 'x' }),
      /IPv4HealthIP/,
      ErrorCode.InvalidArgument,
    );
    rejects(
      () => encodeNode({ ...nodeA, IPv4AllocCIDR: '10.0.0.0' }),
      /IPv4AllocCIDR/,
      ErrorCode.InvalidArgument,
    );
  });
});

// ---------------------------------------------------------------------------------

const POD_PAIR_JSON =
  '{"IP":"10.6.6.43","Mask":null,"HostIP":"10.5.1.132","ID":12928,"Key":0,"Metadata":"cilium-global:default:k8s-node1:432","K8sNamespace":"istio-system","K8sPodName":"ai-ingressgateway-6bdbdbf7dc-jz85c"}';

const podPair: IPIdentityPair = {
  IP: '10.6.6.43',
  Mask: null,
  HostIP: '10.5.1.132',
  ID: 12928,
  Key: 0,
  Metadata: 'cilium-global:default:k8s-node1:432',
  K8sNamespace: 'istio-system',
  K8sPodName: 'ai-ingressgateway-6bdbdbf7dc-jz85c',
};

void describe('IPIdentityPair codec', () => {
  void it('encodes like the reference (etcd dump)', () => {
    assert.equal(encodeIPIdentityPair(podPair), POD_PAIR_JSON);
    assert.equal(ipIdentityPairKeyName(podPair), '10.6.6.43');
  });

  void it('round-trips host entries', () => {
    const pair = decodeIPIdentityPair('10.6.6.43', POD_PAIR_JSON);
    assert.deepEqual(pair, podPair);
    assert.equal(encodeIPIdentityPair(pair), POD_PAIR_JSON);
  });

  void it('handles prefix entries with base64 masks', () => {
    const pair: IPIdentityPair = {
      ...ipAndMaskFor('10.2.0.7/24'),
      HostIP: '',
      ID: 2,
      Key: 0,
      Metadata: '',
    };
    assert.equal(pair.IP, '10.2.0.0');
    assert.equal(pair.Mask, '////AA==');
    const json = encodeIPIdentityPair(pair);
    assert.equal(
      json,
      '{"IP":"10.2.0.0","Mask":"////AA==","HostIP":"","ID":2,"Key":0,"Metadata":""}',
    );
    assert.equal(ipIdentityPairKeyName(pair), '10.2.0.0/24');
    assert.deepEqual(decodeIPIdentityPair('10.2.0.0/24', json), pair);
  });

  void it('handles IPv6, named ports and service accounts', () => {
    const pair: IPIdentityPair = {
      IP: 'fd00:10:244::5',
      Mask: null,
      HostIP: 'fc00:c111::3',
      ID: 65540,
      Key: 3,
      Metadata: '',
      K8sNamespace: 'default',
      K8sPodName: 'x-wing',
      K8sServiceAccount: 'default',
      NamedPorts: [{ Name: 'http', Port: 80, Protocol: 'TCP' }],
    };
    const json = encodeIPIdentityPair(pair);
    assert.equal(
      json,
      '{"IP":"fd00:10:244::5","Mask":null,"HostIP":"fc00:c111::3","ID":65540,"Key":3,"Metadata":"","K8sNamespace":"default","K8sPodName":"x-wing","K8sServiceAccount":"default","NamedPorts":[{"Name":"http","Port":80,"Protocol":"TCP"}]}',
    );
    assert.deepEqual(decodeIPIdentityPair('fd00:10:244::5', json), pair);
    const v6prefix = ipAndMaskFor('fd00::/64');
    assert.deepEqual(v6prefix, { IP: 'fd00::', Mask: '//////////8AAAAAAAAAAA==' });
    assert.equal(ipIdentityPairKeyName(v6prefix), 'fd00::/64');
  });

  void it('rejects a key that does not match PrefixString()', () => {
    rejects(
      () => decodeIPIdentityPair('10.6.6.44', POD_PAIR_JSON),
      /IP address does not match key: expected 10.6.6.44, got 10.6.6.43/,
    );
    rejects(
      () =>
        decodeIPIdentityPair(
          '10.2.0.0',
          '{"IP":"10.2.0.0","Mask":"////AA==","HostIP":"","ID":2,"Key":0,"Metadata":""}',
        ),
      /IP address does not match key: expected 10.2.0.0, got 10.2.0.0\/24/,
    );
    // Keys are compared in canonical form, as Go's net.IP.String() produces them.
    rejects(
      () =>
        decodeIPIdentityPair(
          'FD00::1',
          '{"IP":"fd00::1","Mask":null,"HostIP":"","ID":2,"Key":0,"Metadata":""}',
        ),
      /does not match key/,
    );
  });

  void it('rejects bad IPs, masks and numbers', () => {
    rejects(
      () => decodeIPIdentityPair('x', POD_PAIR_JSON.replace('10.6.6.43', 'x')),
      /invalid IP address/,
    );
    rejects(
      () => decodeIPIdentityPair('10.6.6.43', POD_PAIR_JSON.replace('"IP":"10.6.6.43",', '')),
      /invalid IP address/,
    );
    rejects(
      () => decodeIPIdentityPair('10.6.6.43', POD_PAIR_JSON.replace('10.5.1.132', '10.5.1')),
      /invalid HostIP/,
    );
    rejects(
      () =>
        decodeIPIdentityPair(
          '10.6.6.43/24',
          POD_PAIR_JSON.replace('"Mask":null', '"Mask":"not base64!"'),
        ),
      /invalid mask/,
    );
    rejects(
      () =>
        decodeIPIdentityPair(
          '10.6.6.43/24',
          POD_PAIR_JSON.replace('"Mask":null', '"Mask":"/wD/AA=="'),
        ),
      /invalid mask/,
    );
    rejects(
      () => decodeIPIdentityPair('10.6.6.43', POD_PAIR_JSON.replace('"ID":12928', '"ID":-1')),
      /ID/,
    );
    rejects(
      () => decodeIPIdentityPair('10.6.6.43', POD_PAIR_JSON.replace('"ID":12928', '"ID":1.5')),
      /ID/,
    );
    rejects(() => decodeIPIdentityPair('10.6.6.43', POD_PAIR_JSON.slice(0, -1)), /malformed JSON/);
  });
});

// ---------------------------------------------------------------------------------

void describe('CiliumClusterConfig codec', () => {
  void it('encodes what the apiserver and KVStoreMesh write', () => {
    const own = apiserverClusterConfig({
      id: 2,
      maxConnectedClusters: 255,
      serviceExportsEnabled: false,
    });
    assert.equal(
      encodeClusterConfig(own),
      '{"id":2,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":false}}',
    );
    assert.equal(
      encodeClusterConfig(kvstoremeshClusterConfig(own)),
      '{"id":2,"capabilities":{"syncedCanaries":true,"cached":true,"maxConnectedClusters":255,"serviceExportsEnabled":false}}',
    );
  });

  void it('omits empty fields but never the capabilities struct', () => {
    assert.equal(encodeClusterConfig(makeClusterConfig(0)), '{"capabilities":{}}');
    assert.equal(
      encodeClusterConfig(makeClusterConfig(5, { serviceExportsEnabled: true })),
      '{"id":5,"capabilities":{"serviceExportsEnabled":true}}',
    );
  });

  void it('decodes, distinguishing absent from false serviceExportsEnabled', () => {
    const older = decodeClusterConfig('c2', '{"id":2,"capabilities":{"syncedCanaries":true}}');
    assert.deepEqual(older, makeClusterConfig(2, { syncedCanaries: true }));
    assert.equal(serviceExportsStatus(older), 'unsupported');
    const disabled = decodeClusterConfig(
      'c2',
      '{"id":2,"capabilities":{"syncedCanaries":true,"maxConnectedClusters":255,"serviceExportsEnabled":false,"future":1}}',
    );
    assert.equal(disabled.capabilities.serviceExportsEnabled, false);
    assert.equal(serviceExportsStatus(disabled), 'disabled');
    assert.deepEqual(decodeClusterConfig('c2', '{}'), makeClusterConfig(0));
    rejects(() => decodeClusterConfig('c2', '{"id":"2"}'), /id/);
    rejects(() => decodeClusterConfig('c2', ''), /malformed JSON/);
  });

  void it('validates a remote config against the local settings', () => {
    validateRemoteClusterConfig(makeClusterConfig(2), { maxConnectedClusters: 255 });
    rejects(
      () => validateRemoteClusterConfig(makeClusterConfig(0), { maxConnectedClusters: 255 }),
      /^ClusterID 0 is reserved$/,
    );
    rejects(
      () => validateRemoteClusterConfig(makeClusterConfig(300), { maxConnectedClusters: 255 }),
      /^ClusterID > 255 is not supported$/,
    );
    rejects(
      () =>
        validateRemoteClusterConfig(makeClusterConfig(300, { maxConnectedClusters: 255 }), {
          maxConnectedClusters: 511,
        }),
      /^mismatched MaxConnectedClusters; local=511, remote=255$/,
    );
    validateRemoteClusterConfig(makeClusterConfig(300, { maxConnectedClusters: 511 }), {
      maxConnectedClusters: 511,
    });
  });
});

// ---------------------------------------------------------------------------------

const EXPORT_JSON =
  '{"cluster":"c2","name":"rebel-base","namespace":"default","exportCreationTimestamp":"2026-11-23T02:18:54Z","ports":[{"name":"http","protocol":"TCP","port":80}],"type":"ClusterSetIP","sessionAffinity":"None"}';

const rebelExport: MCSAPIServiceSpec = {
  cluster: 'c2',
  name: 'rebel-base',
  namespace: 'default',
  exportCreationTimestamp: '2026-11-23T02:18:54Z',
  ports: [{ name: 'http', protocol: 'TCP', port: 80 }],
  type: 'ClusterSetIP',
  sessionAffinity: 'None',
};

void describe('MCSAPIServiceSpec codec', () => {
  void it('encodes in reference field order', () => {
    assert.equal(encodeMCSAPIServiceSpec(rebelExport), EXPORT_JSON);
  });

  void it('round-trips, normalising timestamps to UTC seconds', () => {
    assert.deepEqual(decodeMCSAPIServiceSpec('c2/default/rebel-base', EXPORT_JSON), rebelExport);
    const offset = EXPORT_JSON.replace('2026-11-23T02:18:54Z', '2026-11-23T03:18:54.250+01:00');
    const spec = decodeMCSAPIServiceSpec('c2/default/rebel-base', offset);
    assert.equal(spec.exportCreationTimestamp, '2026-11-23T02:18:54Z');
  });

  void it('encodes the optional newer fields', () => {
    const spec: MCSAPIServiceSpec = {
      ...rebelExport,
      annotations: { a: '1' },
      labels: { l: '2' },
      ports: [{ port: 53, protocol: 'UDP', appProtocol: 'dns' }],
      type: 'Headless',
      sessionAffinity: 'ClientIP',
      sessionAffinityConfig: { clientIP: { timeoutSeconds: 10 } },
      ipFamilies: ['IPv4'],
      internalTrafficPolicy: 'Cluster',
      trafficDistribution: 'PreferClose',
    };
    const json = encodeMCSAPIServiceSpec(spec);
    assert.equal(
      json,
      '{"cluster":"c2","name":"rebel-base","namespace":"default","annotations":{"a":"1"},"labels":{"l":"2"},"exportCreationTimestamp":"2026-11-23T02:18:54Z","ports":[{"protocol":"UDP","appProtocol":"dns","port":53}],"type":"Headless","sessionAffinity":"ClientIP","sessionAffinityConfig":{"clientIP":{"timeoutSeconds":10}},"ipFamilies":["IPv4"],"internalTrafficPolicy":"Cluster","trafficDistribution":"PreferClose"}',
    );
    assert.deepEqual(decodeMCSAPIServiceSpec('c2/default/rebel-base', json), spec);
  });

  void it('reads the legacy capitalised labels', () => {
    const spec = decodeMCSAPIServiceSpec(
      'c2/default/rebel-base',
      EXPORT_JSON.replace('"ports"', '"Labels":{"x":"y"},"ports"'),
    );
    assert.deepEqual(spec.labels, { x: 'y' });
  });

  void it('rejects invalid entries', () => {
    rejects(
      () => decodeMCSAPIServiceSpec('c2/default/other', EXPORT_JSON),
      /namespaced name does not match key: got default\/rebel-base, expected default\/other/,
    );
    rejects(
      () =>
        decodeMCSAPIServiceSpec(
          'c2/default/rebel-base',
          EXPORT_JSON.replace('"2026-11-23T02:18:54Z"', 'null'),
        ),
      /exportCreationTimestamp is unset/,
    );
    rejects(
      () =>
        decodeMCSAPIServiceSpec(
          'c2/default/rebel-base',
          EXPORT_JSON.replace('2026-11-23T02:18:54Z', '0001-01-01T00:00:00Z'),
        ),
      /exportCreationTimestamp is unset/,
    );
    rejects(
      () =>
        decodeMCSAPIServiceSpec(
          'c2/default/rebel-base',
          EXPORT_JSON.replace('2026-11-23T02:18:54Z', 'yesterday'),
        ),
      /exportCreationTimestamp: invalid RFC 3339 time/,
    );
    rejects(
      () =>
        decodeMCSAPIServiceSpec(
          'c2/default/rebel-base',
          EXPORT_JSON.replace('ClusterSetIP', 'LoadBalancer'),
        ),
      /type is unknown: LoadBalancer/,
    );
    rejects(
      () =>
        decodeMCSAPIServiceSpec('c2/default/rebel-base', EXPORT_JSON.replace('"None"', '"Sticky"')),
      /session affinity is unknown: Sticky/,
    );
    rejects(
      () =>
        decodeMCSAPIServiceSpec(
          'c2/default/rebel-base',
          EXPORT_JSON.replace('"namespace":"default",', ''),
        ),
      /namespace is unset/,
    );
    rejects(
      () =>
        decodeMCSAPIServiceSpec('c2/default/rebel-base', EXPORT_JSON, { expectedCluster: 'c1' }),
      /unexpected cluster name: got c2, expected c1/,
    );
    rejects(() => decodeMCSAPIServiceSpec('c2/default/rebel-base', '{'), /malformed JSON/);
  });
});

// ---------------------------------------------------------------------------------

void describe('identities', () => {
  const labels = [{ source: 'k8s', key: 'app', value: 'rebel-base' }, clusterLabel('c2')];

  void it('encodes and decodes master keys', () => {
    const value = encodeIdentity({ labels });
    assert.equal(value, 'k8s:app=rebel-base;k8s:io.cilium.k8s.policy.cluster=c2;');
    assert.deepEqual(decodeIdentity('131073', value), { id: 131073, labels });
    rejects(() => decodeIdentity('0x20001', value), /not a decimal identity/);
    rejects(() => decodeIdentity('4294967296', value), /not a decimal identity/);
  });

  void it('classifies identity key suffixes', () => {
    assert.deepEqual(parseIdentityKeySuffix('id/131073'), { kind: 'id', id: 131073 });
    assert.deepEqual(parseIdentityKeySuffix('value/k8s:app.kubernetes.io/name=x;/10.0.0.1'), {
      kind: 'value',
      labels: 'k8s:app.kubernetes.io/name=x;',
      suffix: '10.0.0.1',
    });
    assert.deepEqual(parseIdentityKeySuffix('locks/abc'), { kind: 'other', suffix: 'locks/abc' });
    assert.deepEqual(parseIdentityKeySuffix('id/abc'), { kind: 'other', suffix: 'id/abc' });
  });

  void it('validates remote identities', () => {
    const remote = { clusterName: 'c2', clusterId: 2 };
    validateRemoteIdentity('upsert', { id: 131073, labels }, remote);
    rejects(
      () => validateRemoteIdentity('upsert', { id: 65537, labels }, remote),
      /^ID 65537 does not belong to the allocation range of cluster ID 2$/,
    );
    rejects(
      () => validateRemoteIdentity('delete', { id: 100, labels: [] }, remote),
      /does not belong to the allocation range/,
    );
    validateRemoteIdentity('delete', { id: 131073, labels: [] }, remote);
    rejects(
      () =>
        validateRemoteIdentity(
          'upsert',
          { id: 131073, labels: [{ source: 'k8s', key: 'app', value: 'rebel-base' }] },
          remote,
        ),
      /^could not find expected label io.cilium.k8s.policy.cluster$/,
    );
    rejects(
      () => validateRemoteIdentity('upsert', { id: 131073, labels: [clusterLabel('c3')] }, remote),
      /^unexpected cluster name: got c3, expected c2$/,
    );
    rejects(
      () =>
        validateRemoteIdentity(
          'upsert',
          { id: 131073, labels: [{ ...clusterLabel('c2'), source: 'unspec' }] },
          remote,
        ),
      /^unexpected source for cluster label: got unspec, expected k8s$/,
    );
  });

  void it('validates remote ipcache identities', () => {
    validateRemoteIPCacheIdentity(6, { clusterId: 2 });
    validateRemoteIPCacheIdentity(255, { clusterId: 2 });
    validateRemoteIPCacheIdentity(131072, { clusterId: 2 });
    rejects(() => validateRemoteIPCacheIdentity(65536, { clusterId: 2 }), /allocation range/);
    rejects(() => validateRemoteIPCacheIdentity(0x01000100, { clusterId: 2 }), /allocation range/);
    assert.equal(remoteIPCacheIdentity(1), 6);
    assert.equal(remoteIPCacheIdentity(131072), 131072);
  });
});
