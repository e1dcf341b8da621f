import assert from 'node:assert/strict';
import { describe, it } from 'node:test';
import { KINDS, resolveKindName } from '../../src/registry/kinds.js';
import {
  formatPath,
  formatProblem,
  parseObject,
  validateObject,
} from '../../src/registry/validation.js';
import type { Deployment, EndpointSlice, Pod, Service } from '../../src/registry/objects.js';
import type { CiliumEndpoint, CiliumNode } from '../../src/registry/types.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';

/** The one-line problem of an invalid object (`field: reason`). */
function problem(raw: unknown, opts = {}): string {
  const r = validateObject(raw, opts);
  assert.ok(!r.ok, 'expected a validation failure');
  return formatProblem(r.problem);
}

function valid(raw: unknown): unknown {
  const r = validateObject(raw);
  if (!r.ok) assert.fail(formatProblem(r.problem));
  return r.object;
}

const svc = (spec: unknown, meta: Record<string, unknown> = {}): unknown => ({
  apiVersion: 'v1',
  kind: 'Service',
  metadata: { name: 'rebel-base', ...meta },
  spec,
});

void describe('registry kinds', () => {
  it('has a resource, apiVersions and schema for every required kind', () => {
    const byKind = new Map(KINDS.map((k) => [k.kind, k]));
    const expect: [string, string, string[], boolean][] = [
      ['Namespace', 'namespaces', ['v1'], false],
      ['Service', 'services', ['v1'], true],
      ['EndpointSlice', 'endpointslices', ['discovery.k8s.io/v1'], true],
      ['CiliumNode', 'ciliumnodes', ['cilium.io/v2'], false],
      ['CiliumEndpoint', 'ciliumendpoints', ['cilium.io/v2'], true],
      ['CiliumIdentity', 'ciliumidentities', ['cilium.io/v2'], false],
      ['Pod', 'pods', ['v1'], true],
      ['Deployment', 'deployments', ['apps/v1'], true],
      ['CiliumNetworkPolicy', 'ciliumnetworkpolicies', ['cilium.io/v2'], true],
      [
        'CiliumClusterwideNetworkPolicy',
        'ciliumclusterwidenetworkpolicies',
        ['cilium.io/v2'],
        false,
      ],
      ['NetworkPolicy', 'networkpolicies', ['networking.k8s.io/v1'], true],
      ['CiliumExternalWorkload', 'ciliumexternalworkloads', ['cilium.io/v2'], false],
      [
        'ServiceExport',
        'serviceexports',
        ['multicluster.x-k8s.io/v1beta1', 'multicluster.x-k8s.io/v1alpha1'],
        true,
      ],
      [
        'ServiceImport',
        'serviceimports',
        ['multicluster.x-k8s.io/v1beta1', 'multicluster.x-k8s.io/v1alpha1'],
        true,
      ],
    ];
    for (const [kind, resource, versions, namespaced] of expect) {
      const k = byKind.get(kind as never);
      assert.ok(k, kind);
      assert.deepEqual([k.resource, k.apiVersions, k.namespaced], [resource, versions, namespaced]);
    }
  });

  it('resolves kubectl-style names', () => {
    const cases: [string, string][] = [
      ['cn', 'CiliumNode'],
      ['ciliumnodes', 'CiliumNode'],
      ['CiliumNode', 'CiliumNode'],
      ['ciliumnode', 'CiliumNode'],
      ['cep', 'CiliumEndpoint'],
      ['svc', 'Service'],
      ['Services', 'Service'],
      ['ns', 'Namespace'],
      ['endpointslice', 'EndpointSlice'],
      ['serviceexports.multicluster.x-k8s.io', 'ServiceExport'],
      ['ciliumid', 'CiliumIdentity'],
    ];
    for (const [text, kind] of cases) assert.equal(resolveKindName(text)?.kind, kind, text);
    assert.equal(resolveKindName('nodes'), undefined);
  });

  it('accepts a Service and applies defaults', () => {
    const s = valid(
      svc(
        { clusterIP: '127.1.128.20', ports: [{ port: 80 }], selector: { name: 'rebel-base' } },
        { annotations: { 'io.cilium/global-service': 'true' } },
      ),
    ) as Service;
    assert.equal(s.metadata.namespace, 'default');
    assert.equal(s.spec.type, 'ClusterIP');
    assert.deepEqual(s.spec.ports, [{ port: 80, protocol: 'TCP' }]);
    assert.equal(s.metadata.annotations?.['io.cilium/global-service'], 'true');
    // Fields local mode does not read are kept as written.
    const kept = valid(svc({ ports: [], externalTrafficPolicy: 'Local' })) as Service;
    assert.equal(kept.spec.externalTrafficPolicy, 'Local');
    // null counts as absent, as in Kubernetes.
    const nulls = valid(svc({ ports: null }, { creationTimestamp: null })) as Service;
    assert.deepEqual(nulls.spec.ports, []);
  });

  it('rejects Service fields precisely', () => {
    const cases: [unknown, string][] = [
      [svc({ ports: [{ port: '80' }] }), 'spec.ports[0].port: expected number, received string'],
      [svc({ ports: [{ port: 70000 }] }), 'spec.ports[0].port: must be <= 65535, received 70000'],
      [
        svc({ ports: [{ port: 80, protocol: 'HTTP' }] }),
        'spec.ports[0].protocol: expected one of "TCP", "UDP", "SCTP", received "HTTP"',
      ],
      [
        svc({ type: 'Magic' }),
        'spec.type: expected one of "ClusterIP", "NodePort", "LoadBalancer", "ExternalName", received "Magic"',
      ],
      [
        svc({ clusterIP: '10.0.0.300' }),
        'spec.clusterIP: must be an IP address, "None" (headless) or empty, received "10.0.0.300"',
      ],
      [
        svc({ ports: [{ port: 80 }, { port: 81 }] }),
        'spec.ports[0].name: required when a Service has more than one port (and 1 more problem)',
      ],
      [
        svc({ ports: [{ port: 80, targetPort: 'way-too-long-port-name' }] }),
        'spec.ports[0].targetPort: must be a port number or a port name (at most 15 characters: a-z, 0-9 and \'-\', with a letter), received "way-too-long-port-name"',
      ],
      [svc({ type: 'ExternalName' }), 'spec.externalName: required when spec.type is ExternalName'],
      [
        svc({}, { name: 'Rebel_Base' }),
        'metadata.name: must be a lowercase RFC 1035 label (at most 63 characters: a-z, 0-9 and \'-\', starting with a letter and ending with an alphanumeric), received "Rebel_Base"',
      ],
      [
        svc({}, { namespace: 'a.b' }),
        'metadata.namespace: must be a lowercase RFC 1123 label (at most 63 characters: a-z, 0-9 and \'-\', starting and ending with an alphanumeric), received "a.b"',
      ],
      [
        svc({}, { annotations: { 'io.cilium/global-service': true } }),
        'metadata.annotations["io.cilium/global-service"]: expected string, received boolean',
      ],
      [
        svc({}, { labels: { app: 'has space' } }),
        "metadata.labels.app: value \"has space\": must be at most 63 characters of alphanumerics, '-', '_' and '.', starting and ending with an alphanumeric",
      ],
      [svc({}, { name: undefined }), 'metadata.name: required'],
    ];
    for (const [raw, expected] of cases) assert.equal(problem(raw), expected);
  });

  it('rejects unknown kinds, wrong apiVersions and non-objects', () => {
    assert.match(
      problem({ apiVersion: 'v1', kind: 'Gadget', metadata: { name: 'x' } }),
      /^kind: unknown kind "Gadget" \(known: Namespace, Service, /,
    );
    assert.equal(
      problem({ apiVersion: 'cilium.io/v1', kind: 'CiliumNode', metadata: { name: 'x' } }),
      'apiVersion: expected "cilium.io/v2" for kind CiliumNode, received "cilium.io/v1"',
    );
    assert.equal(problem({ kind: 'Service', metadata: { name: 'x' } }), 'apiVersion: required');
    assert.equal(problem(['a']), 'expected a mapping (object), received array');
    assert.equal(problem({ apiVersion: 'v1', kind: 'Service' }), 'metadata: required');
  });

  it('accepts and checks EndpointSlices', () => {
    const slice = {
      apiVersion: 'discovery.k8s.io/v1',
      kind: 'EndpointSlice',
      metadata: { name: 'rebel-base-x1', labels: { 'kubernetes.io/service-name': 'rebel-base' } },
      addressType: 'IPv4',
      endpoints: [
        {
          addresses: ['127.1.1.5'],
          conditions: { ready: true, serving: true, terminating: false },
          nodeName: 'node-1',
          targetRef: { kind: 'Pod', name: 'rebel-base-1', namespace: 'default' },
        },
      ],
      ports: [{ name: 'http', port: 80 }],
    };
    const s = valid(slice) as EndpointSlice;
    assert.deepEqual(s.ports, [{ name: 'http', port: 80, protocol: 'TCP' }]);
    assert.equal(
      problem({ ...slice, endpoints: [{ addresses: ['fd00::1'] }] }),
      'endpoints[0].addresses[0]: must be a valid IPv4 address (addressType IPv4), received "fd00::1"',
    );
    assert.equal(
      problem({ ...slice, metadata: { name: 'x' } }),
      'metadata.labels["kubernetes.io/service-name"]: required: the name of the Service this slice belongs to',
    );
    assert.equal(
      problem({
        ...slice,
        endpoints: [{ addresses: ['127.1.1.5'], conditions: { ready: 'yes' } }],
      }),
      'endpoints[0].conditions.ready: expected boolean, received string',
    );
  });

  it('accepts and checks CiliumNodes', () => {
    const node = {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNode',
      metadata: { name: 'node-1', namespace: 'ignored' },
      spec: {
        addresses: [
          { type: 'InternalIP', ip: '127.1.0.1' },
          { type: 'CiliumInternalIP', ip: '127.1.1.1' },
        ],
        ipam: { podCIDRs: ['127.1.1.0/24'] },
        health: { ipv4: '127.1.1.2' },
        encryption: { key: 3 },
      },
    };
    const n = valid(node) as CiliumNode;
    // Cluster-scoped: a namespace is dropped, as Kubernetes does.
    assert.equal(n.metadata.namespace, undefined);
    assert.equal(n.spec.ipam?.podCIDRs?.[0], '127.1.1.0/24');
    assert.equal(
      problem({ ...node, spec: { addresses: [{ type: 'InternalIP', ip: '127.1.0.01' }] } }),
      'spec.addresses[0].ip: must be a valid IP address, received "127.1.0.01"',
    );
    assert.equal(
      problem({ ...node, spec: { ipam: { podCIDRs: ['127.1.1.0'] } } }),
      'spec.ipam.podCIDRs[0]: must be a valid CIDR (address/prefix-length), received "127.1.1.0"',
    );
    assert.equal(
      problem({ ...node, spec: { health: { ipv4: 'fd00::1' } } }),
      'spec.health.ipv4: must be a valid IPv4 address, received "fd00::1"',
    );
    assert.equal(
      problem({ ...node, metadata: { name: 'Node_1' } }),
      "metadata.name: must be a lowercase RFC 1123 subdomain (at most 253 characters: a-z, 0-9, '-' and '.', each part starting and ending with an alphanumeric), received \"Node_1\"",
    );
  });

  it('accepts and checks CiliumEndpoints and CiliumIdentities', () => {
    const cep = {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumEndpoint',
      metadata: { name: 'x-wing-1' },
      status: {
        id: 1234,
        identity: { id: 66000, labels: ['k8s:name=x-wing'] },
        networking: { addressing: [{ ipv4: '127.1.1.7' }], node: '127.1.0.1' },
        encryption: { key: 0 },
        'named-ports': [{ name: 'http', port: 80, protocol: 'TCP' }],
      },
    };
    const e = valid(cep) as CiliumEndpoint;
    assert.equal(e.metadata.namespace, 'default');
    assert.equal(e.status.identity?.id, 66000);
    assert.equal(
      problem({ ...cep, status: { networking: { addressing: [{ ipv6: '127.0.0.1' }] } } }),
      'status.networking.addressing[0].ipv6: must be a valid IPv6 address, received "127.0.0.1"',
    );
    assert.equal(
      problem({ ...cep, status: { identity: { id: -1 } } }),
      'status.identity.id: must be >= 0, received -1',
    );
    const id = {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumIdentity',
      metadata: { name: '66000' },
      'security-labels': { 'k8s:app': 'x' },
    };
    valid(id);
    for (const name of ['0', '007', 'abc']) {
      assert.match(
        problem({ ...id, metadata: { name } }),
        /^metadata\.name: must be the decimal numeric identity/,
      );
    }
    assert.equal(problem({ ...id, 'security-labels': undefined }), 'security-labels: required');
  });

  it('accepts schema-light kinds on apiVersion, kind and metadata', () => {
    const se = valid({
      apiVersion: 'multicluster.x-k8s.io/v1alpha1',
      kind: 'ServiceExport',
      metadata: { name: 'rebel-base' },
    });
    assert.deepEqual(se, {
      apiVersion: 'multicluster.x-k8s.io/v1alpha1',
      kind: 'ServiceExport',
      metadata: { name: 'rebel-base', namespace: 'default' },
    });
    valid({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'allow-cross-cluster', description: 'free text' },
      spec: { endpointSelector: {} },
    });
    assert.equal(
      problem({
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumExternalWorkload',
        metadata: { name: '' },
      }),
      'metadata.name: must not be empty',
    );
  });

  it('validates Pods: at least one container with an image, ports, named ports unique', () => {
    const pod = (spec: unknown): unknown => ({
      apiVersion: 'v1',
      kind: 'Pod',
      metadata: { name: 'p' },
      spec,
    });
    const ok = valid(
      pod({
        containers: [{ name: 'c', image: 'clustermesh/echo', ports: [{ containerPort: 80 }] }],
      }),
    );
    // Defaults are stored: protocol TCP.
    assert.deepEqual((ok as Pod).spec.containers[0]?.ports, [
      { containerPort: 80, protocol: 'TCP' },
    ]);
    assert.equal(problem(pod(undefined)), 'spec: required');
    assert.equal(problem(pod({ containers: [] })), 'spec.containers: must not be empty');
    assert.equal(
      problem(pod({ containers: [{ name: 'c' }] })),
      'spec.containers[0].image: required',
    );
    assert.equal(
      problem(pod({ containers: [{ name: 'c', image: 'x', ports: [{ containerPort: 0 }] }] })),
      'spec.containers[0].ports[0].containerPort: must be >= 1, received 0',
    );
    assert.equal(
      problem(
        pod({
          containers: [
            { name: 'a', image: 'x', ports: [{ containerPort: 80, name: 'http' }] },
            { name: 'b', image: 'x', ports: [{ containerPort: 81, name: 'http' }] },
          ],
        }),
      ),
      'spec.containers[1].ports[0].name: duplicate port name in the pod, received "http"',
    );
    assert.match(
      problem(pod({ containers: [{ name: 'c', image: 'x' }], nodeName: 'Node_1' })),
      /^spec\.nodeName: must be a lowercase RFC 1123 subdomain/,
    );
    assert.equal(
      problem({
        ...(pod({ containers: [{ name: 'c', image: 'x' }] }) as object),
        status: { phase: 'Running', podIP: 'x' },
      }),
      'status.podIP: must be a valid IP address, received "x"',
    );
  });

  it('validates Deployments: replicas default 1, selector required and matching the template', () => {
    const deploy = (spec: Record<string, unknown>): unknown => ({
      apiVersion: 'apps/v1',
      kind: 'Deployment',
      metadata: { name: 'd' },
      spec: {
        selector: { matchLabels: { app: 'x' } },
        template: {
          metadata: { labels: { app: 'x', tier: 'web' } },
          spec: { containers: [{ name: 'c', image: 'clustermesh/echo' }] },
        },
        ...spec,
      },
    });
    assert.equal((valid(deploy({})) as Deployment).spec.replicas, 1);
    assert.equal((valid(deploy({ replicas: 0 })) as Deployment).spec.replicas, 0);
    assert.equal(problem(deploy({ replicas: -1 })), 'spec.replicas: must be >= 0, received -1');
    assert.equal(problem(deploy({ selector: undefined })), 'spec.selector: required');
    assert.match(
      problem(deploy({ selector: { matchLabels: {} } })),
      /^spec\.selector\.matchLabels: must not be empty/,
    );
    assert.equal(
      problem(deploy({ selector: { matchLabels: { app: 'y' } } })),
      'spec.template.metadata.labels: must match spec.selector.matchLabels (missing app=y)',
    );
    assert.equal(
      problem(
        deploy({ template: { metadata: { labels: { app: 'x' } }, spec: { containers: [] } } }),
      ),
      'spec.template.spec.containers: must not be empty',
    );
  });

  it('validates ownerReferences on every kind', () => {
    const meta = (ownerReferences: unknown): unknown => ({
      apiVersion: 'v1',
      kind: 'Namespace',
      metadata: { name: 'n', ownerReferences },
    });
    valid(meta([{ apiVersion: 'v1', kind: 'Service', name: 's', uid: 'u', controller: true }]));
    assert.equal(
      problem(meta([{ apiVersion: 'v1', kind: 'Service', name: 's' }])),
      'metadata.ownerReferences[0].uid: required',
    );
  });

  it("checks every kind's name by the rule of its table entry, in full and identity-only", () => {
    const expected: Record<string, string> = {
      Namespace: 'RFC 1123 label',
      Service: 'RFC 1035 label',
      ServiceExport: 'RFC 1035 label',
      ServiceImport: 'RFC 1035 label',
      CiliumIdentity: 'decimal numeric identity',
    };
    for (const info of KINDS) {
      assert.match(info.nameRule.rule, new RegExp(expected[info.kind] ?? 'RFC 1123 subdomain'));
      const obj = {
        apiVersion: info.apiVersions[0],
        kind: info.kind,
        metadata: { name: 'Bad_Name' },
      };
      const identity = validateObject(obj, { identityOnly: true });
      assert.ok(!identity.ok, info.kind);
      assert.equal(
        formatProblem(identity.problem),
        `metadata.name: ${info.nameRule.rule}, received "Bad_Name"`,
      );
      const full = info.schema.safeParse(obj);
      assert.ok(!full.success, info.kind);
      assert.ok(
        full.error.issues.some(
          (i) => i.path.join('.') === 'metadata.name' && i.message === info.nameRule.rule,
        ),
        `${info.kind}: the full schema checks the name by the same rule`,
      );
    }
  });

  it('honours -n: default for objects without namespace, error on a mismatch', () => {
    const obj = { apiVersion: 'v1', kind: 'Service', metadata: { name: 'p' } };
    const r = validateObject(obj, { namespace: 'prod' });
    assert.ok(r.ok, 'r.ok');
    assert.equal(r.object.metadata.namespace, 'prod');
    assert.equal(
      problem({ ...obj, metadata: { name: 'p', namespace: 'dev' } }, { namespace: 'prod' }),
      'metadata.namespace: "dev" does not match the namespace "prod" given on the command line',
    );
  });

  it('parseObject throws one line with code ERR_INVALID_ARGUMENT', () => {
    assert.throws(
      () => parseObject(svc({ ports: [{ port: 0 }] })),
      (e: unknown) =>
        isClusterMeshError(e, ErrorCode.InvalidArgument) &&
        e.message === 'Service default/rebel-base: spec.ports[0].port: must be >= 1, received 0',
    );
  });

  it('formats field paths', () => {
    assert.equal(formatPath(['spec', 'ports', 0, 'port']), 'spec.ports[0].port');
    assert.equal(formatPath(['metadata', 'labels', 'a/b']), 'metadata.labels["a/b"]');
    assert.equal(formatPath(['status', 'named-ports', 1]), 'status.named-ports[1]');
  });
});
