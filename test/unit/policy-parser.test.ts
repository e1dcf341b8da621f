import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import { isClusterMeshError } from '../../src/lib/errors.js';
import { parsePolicy, type LabelSelectorN } from '../../src/policy/rules.js';
import { ccnp, cnp, knp } from './policy-fixtures.js';

function reqs(sel: LabelSelectorN): string {
  return sel.key;
}

void describe('parsePolicy: refuses what it cannot represent, naming the field', () => {
  const sel = { matchLabels: { app: 'x' } };
  const cases: [string, unknown, string][] = [
    ['not an object', 'x', '(object)'],
    ['kind', { apiVersion: 'v1', kind: 'Pod', metadata: { name: 'a' } }, 'kind'],
    [
      'apiVersion',
      {
        apiVersion: 'cilium.io/v1',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: 'a' },
        spec: {},
      },
      'apiVersion',
    ],
    [
      'name',
      { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: {}, spec: {} },
      'metadata.name',
    ],
    [
      'no spec',
      { apiVersion: 'cilium.io/v2', kind: 'CiliumNetworkPolicy', metadata: { name: 'a' } },
      'spec',
    ],
    ['no endpointSelector', cnp('a', 'default', { ingress: [] }), 'spec.endpointSelector'],
    ['nodeSelector', ccnp('a', { nodeSelector: {} }), 'spec.nodeSelector'],
    ['unknown rule field', cnp('a', 'default', { endpointSelector: sel, bogus: 1 }), 'spec.bogus'],
    [
      'L7 rules',
      cnp('a', 'default', {
        endpointSelector: sel,
        ingress: [{ toPorts: [{ ports: [{ port: '80' }], rules: {} }] }],
      }),
      'spec.ingress[0].toPorts[0].rules',
    ],
    [
      'toFQDNs',
      cnp('a', 'default', { endpointSelector: sel, egress: [{ toFQDNs: [{ matchName: 'x' }] }] }),
      'spec.egress[0].toFQDNs',
    ],
    [
      'fromRequires',
      cnp('a', 'default', { endpointSelector: sel, ingress: [{ fromRequires: [{}] }] }),
      'spec.ingress[0].fromRequires',
    ],
    [
      'icmps',
      cnp('a', 'default', { endpointSelector: sel, ingress: [{ icmps: [] }] }),
      'spec.ingress[0].icmps',
    ],
    [
      'combined L3',
      cnp('a', 'default', {
        endpointSelector: sel,
        ingress: [{ fromEndpoints: [{}], fromCIDR: ['10.0.0.0/8'] }],
      }),
      'spec.ingress[0].fromCIDR',
    ],
    [
      'toCIDR with toCIDRSet',
      cnp('a', 'default', {
        endpointSelector: sel,
        egress: [{ toCIDR: ['10.0.0.0/8'], toCIDRSet: [{ cidr: '10.0.0.0/8' }] }],
      }),
      'spec.egress[0].toCIDRSet',
    ],
    [
      'bad CIDR',
      cnp('a', 'default', { endpointSelector: sel, egress: [{ toCIDR: ['10.0.0.0/33'] }] }),
      'spec.egress[0].toCIDR[0]',
    ],
    [
      'except outside',
      cnp('a', 'default', {
        endpointSelector: sel,
        egress: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['11.0.0.0/16'] }] }],
      }),
      'spec.egress[0].toCIDRSet[0].except',
    ],
    [
      'cidrGroupRef',
      cnp('a', 'default', {
        endpointSelector: sel,
        egress: [{ toCIDRSet: [{ cidrGroupRef: 'g' }] }],
      }),
      'spec.egress[0].toCIDRSet[0].cidrGroupRef',
    ],
    [
      'entity',
      cnp('a', 'default', { endpointSelector: sel, egress: [{ toEntities: ['moon'] }] }),
      'spec.egress[0].toEntities[0]',
    ],
    [
      'operator',
      cnp('a', 'default', {
        endpointSelector: { matchExpressions: [{ key: 'a', operator: 'Gt' }] },
      }),
      'spec.endpointSelector.matchExpressions[0].operator',
    ],
    [
      'In without values',
      cnp('a', 'default', {
        endpointSelector: { matchExpressions: [{ key: 'a', operator: 'In' }] },
      }),
      'spec.endpointSelector.matchExpressions[0].values',
    ],
    [
      'two sources',
      cnp('a', 'default', { endpointSelector: { matchLabels: { 'k8s:k8s:app': 'x' } } }),
      'spec.endpointSelector.matchLabels.k8s:k8s:app',
    ],
    [
      'unknown source',
      cnp('a', 'default', { endpointSelector: { matchLabels: { 'foo:app': 'x' } } }),
      'spec.endpointSelector.matchLabels.foo:app',
    ],
    [
      'port range',
      cnp('a', 'default', {
        endpointSelector: sel,
        ingress: [{ toPorts: [{ ports: [{ port: '70000' }] }] }],
      }),
      'spec.ingress[0].toPorts[0].ports[0].port',
    ],
    [
      'missing port',
      cnp('a', 'default', {
        endpointSelector: sel,
        ingress: [{ toPorts: [{ ports: [{ protocol: 'TCP' }] }] }],
      }),
      'spec.ingress[0].toPorts[0].ports[0].port',
    ],
    [
      'endPort below port',
      cnp('a', 'default', {
        endpointSelector: sel,
        ingress: [{ toPorts: [{ ports: [{ port: '80', endPort: 79 }] }] }],
      }),
      'spec.ingress[0].toPorts[0].ports[0].endPort',
    ],
    [
      'protocol',
      cnp('a', 'default', {
        endpointSelector: sel,
        ingress: [{ toPorts: [{ ports: [{ port: '80', protocol: 'ICMP' }] }] }],
      }),
      'spec.ingress[0].toPorts[0].ports[0].protocol',
    ],
    [
      'enableDefaultDeny type',
      cnp('a', 'default', { endpointSelector: sel, enableDefaultDeny: { ingress: 'no' } }),
      'spec.enableDefaultDeny.ingress',
    ],
    ['KNP podSelector', knp('a', 'default', {}), 'spec.podSelector'],
    [
      'KNP policyTypes',
      knp('a', 'default', { podSelector: {}, policyTypes: ['Both'] }),
      'spec.policyTypes[0]',
    ],
    [
      'KNP ipBlock with selector',
      knp('a', 'default', {
        podSelector: {},
        ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8' }, podSelector: {} }] }],
      }),
      'spec.ingress[0].from[0].ipBlock',
    ],
    [
      'KNP empty peer',
      knp('a', 'default', { podSelector: {}, ingress: [{ from: [{}] }] }),
      'spec.ingress[0].from[0]',
    ],
    [
      'KNP protocol',
      knp('a', 'default', { podSelector: {}, ingress: [{ ports: [{ protocol: 'ANY' }] }] }),
      'spec.ingress[0].ports[0].protocol',
    ],
    [
      'KNP endPort with name',
      knp('a', 'default', {
        podSelector: {},
        egress: [{ ports: [{ port: 'http', endPort: 90 }] }],
      }),
      'spec.egress[0].ports[0].endPort',
    ],
  ];
  for (const [name, obj, field] of cases) {
    void it(name, () => {
      assert.throws(
        () => parsePolicy(obj),
        (err: unknown) => {
          assert.ok(isClusterMeshError(err, 'ERR_INVALID_ARGUMENT'), String(err));
          assert.ok(err.message.includes(`${field}:`), `${err.message} should name ${field}`);
          assert.ok(!err.message.includes('\n'), "!err.message.includes('\\n')");
          return true;
        },
      );
    });
  }
});

void describe('parsePolicy: normalization', () => {
  void it('CNP subject gets the policy namespace, replacing a user k8s: namespace', () => {
    const p = parsePolicy(
      cnp('a', 'prod', {
        endpointSelector: { matchLabels: { app: 'x', 'k8s:io.kubernetes.pod.namespace': 'other' } },
        ingress: [{}],
      }),
    );
    const e = p.entries[0];
    assert.ok(e, 'e');
    assert.equal(reqs(e.subject), 'L{any:app=x,k8s:io.kubernetes.pod.namespace=prod}');
    assert.equal(e.peers, null);
    assert.equal(e.defaultDeny, true);
  });

  void it('peer defaulting: namespace then cluster, only when the flag is on', () => {
    const obj = cnp('a', 'prod', {
      endpointSelector: {},
      ingress: [{ fromEndpoints: [{ matchLabels: { app: 'y' } }] }],
    });
    const on = parsePolicy(obj, { clusterName: 'c1' }).entries[0]?.peers?.[0];
    const off = parsePolicy(obj, { clusterName: 'c1', policyDefaultLocalCluster: false }).entries[0]
      ?.peers?.[0];
    assert.equal(
      on?.key,
      'L{any:app=y,k8s:io.cilium.k8s.policy.cluster=c1,k8s:io.kubernetes.pod.namespace=prod}',
    );
    assert.equal(off?.key, 'L{any:app=y,k8s:io.kubernetes.pod.namespace=prod}');
  });

  void it('CCNP peers get "any namespace", not the subject; reserved peers are left alone', () => {
    const p = parsePolicy(
      ccnp('a', {
        endpointSelector: { matchLabels: { app: 'x' } },
        ingress: [{ fromEndpoints: [{}, { matchLabels: { 'reserved:host': '' } }] }],
      }),
      { clusterName: 'c1' },
    );
    const e = p.entries[0];
    assert.ok(e !== undefined, 'e !== undefined');
    assert.equal(e.subject.key, 'L{any:app=x}');
    assert.deepEqual(
      e.peers?.map((s) => s.key),
      [
        'L{k8s:io.cilium.k8s.policy.cluster=c1,k8s:io.kubernetes.pod.namespace}',
        'L{reserved:host=}',
      ],
    );
    assert.equal(p.ref.namespace, '');
  });

  void it('KNP: keys are k8s:, namespace labels are mapped, policyTypes default', () => {
    const p = parsePolicy(
      knp('a', 'default', {
        podSelector: { matchLabels: { role: 'db' } },
        ingress: [
          {
            from: [
              {
                namespaceSelector: { matchLabels: { team: 'a' } },
                podSelector: { matchLabels: { app: 'b' } },
              },
            ],
          },
        ],
      }),
      { clusterName: 'c1' },
    );
    assert.equal(p.entries.length, 1);
    const e = p.entries[0];
    assert.ok(e !== undefined, 'e !== undefined');
    assert.equal(e.subject.key, 'L{k8s:io.kubernetes.pod.namespace=default,k8s:role=db}');
    assert.equal(
      e.peers?.[0]?.key,
      'L{k8s:app=b,k8s:io.cilium.k8s.namespace.labels.team=a,k8s:io.cilium.k8s.policy.cluster=c1}',
    );
    assert.equal(e.ports.length, 0);
  });

  void it('named ports are lower-cased; endPort makes an inclusive range; 0 is every port', () => {
    const p = parsePolicy(
      cnp('a', 'default', {
        endpointSelector: {},
        ingress: [
          {
            toPorts: [
              { ports: [{ port: 'HTTP' }, { port: '80', endPort: 90, protocol: 'UDP' }] },
              { ports: [{ port: 0 }] },
            ],
          },
        ],
      }),
    );
    assert.deepEqual(p.entries[0]?.ports, [
      { port: 0, endPort: 0, name: 'http', protocols: ['TCP', 'UDP', 'SCTP'] },
      { port: 80, endPort: 90, name: null, protocols: ['UDP'] },
      { port: 0, endPort: 65535, name: null, protocols: ['TCP', 'UDP', 'SCTP'] },
    ]);
  });

  void it('empty peer lists match nothing; spec and specs both count', () => {
    const p = parsePolicy({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'a', namespace: 'default' },
      spec: {
        endpointSelector: {},
        egress: [{ toEndpoints: [], toPorts: [{ ports: [{ port: '80' }] }] }],
      },
      specs: [{ endpointSelector: {}, egressDeny: [{ toEntities: ['world'] }] }],
    });
    assert.equal(p.entries.length, 2);
    const [e0, e1] = p.entries;
    assert.ok(e0 !== undefined && e1 !== undefined, 'e0 !== undefined && e1 !== undefined');
    assert.deepEqual(e0.peers, []);
    assert.equal(e1.action, 'deny');
    assert.equal(e1.path, 'specs[0].egressDeny[0]');
  });
});
