/**
 * The three policy kinds: the API shapes users write are accepted as written, and anything
 * the policy engine would not enforce is refused with one line naming document, field and
 * reason, before anything is written.
 */
import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { sharedMemoryStore } from '../../src/kvstore/config.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { kindInfo, resolveKindName } from '../../src/registry/kinds.js';
import { parseManifest } from '../../src/registry/manifest.js';
import type {
  CiliumClusterwideNetworkPolicy,
  CiliumNetworkPolicy,
  NetworkPolicy,
  PolicyRule,
} from '../../src/registry/objects.js';
import { formatLabelSelector, formatTable } from '../../src/registry/printers.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { runCliCaptured, type CapturedRun } from '../support/cli.js';
import { formatProblem, validateObject } from '../../src/registry/validation.js';
import { ALLOW_CROSS_CLUSTER } from '../support/policies.js';

/** Every document of a manifest, validated; fails the test on the first problem. */
function accept(yaml: string): unknown[] {
  return parseManifest(yaml, 'policy.yaml').map((o) => o.object);
}

/** The one-line error for a manifest. */
function refuse(yaml: string): string {
  let message = '';
  assert.throws(
    () => parseManifest(yaml, 'bad.yaml'),
    (e: unknown) => {
      assert.ok(isClusterMeshError(e, ErrorCode.InvalidArgument), String(e));
      message = e.message;
      return true;
    },
  );
  assert.ok(!message.includes('\n'), message);
  return message;
}

const cnp = (spec: string): string => `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: p}
spec:
${spec}`;

const ccnp = (spec: string): string => `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: p}
spec:
${spec}`;

const netpol = (spec: string): string => `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: p}
spec:
${spec}`;

const CILIUM_EXAMPLES = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: allow-cross-cluster, namespace: production}
spec:
  endpointSelector:
    matchLabels: {app: backend}
  ingress:
  - fromEndpoints:
    - matchLabels: {app: frontend, io.cilium.k8s.policy.cluster: cluster-a}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l4-rule}
spec:
  description: "L4 policy: only port 80/TCP from the light side"
  endpointSelector:
    matchLabels: {org: alliance}
  ingress:
  - fromEndpoints:
    - matchLabels: {"k8s:org": alliance}
    toPorts:
    - ports:
      - {port: "80", protocol: TCP}
      - {port: "8080", endPort: 8090, protocol: ANY}
      - {port: http-alt}
      - {port: "53", protocol: UDP}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: cidr-rule}
spec:
  endpointSelector:
    matchExpressions:
    - {key: app, operator: In, values: [myService, other]}
    - {key: tier, operator: DoesNotExist}
    - {key: team, operator: Exists, values: []}
  egress:
  - toCIDR: [20.1.1.1/32, 10.9.9.9]
  - toCIDRSet:
    - cidr: 10.0.0.0/8
      except: [10.96.0.0/12, 10.1.2.3/32]
    - cidr: "fd00::/8"
      except: ["fd00:1::/32"]
  - toEntities: [world, kube-apiserver]
    toPorts: [{ports: [{port: "443"}]}]
  egressDeny:
  - toEntities: [world-ipv6]
  enableDefaultDeny: {ingress: false, egress: true}
  labels:
  - {key: team, value: rebels, source: k8s}
---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: multi-rule}
specs:
- endpointSelector: {matchLabels: {app: a}}
  ingress:
  - fromEntities: [cluster, remote-node, health, host]
- endpointSelector: {}
  ingressDeny:
  - fromCIDRSet: [{cidr: 192.168.0.0/16}]
    toPorts: [{ports: [{port: "0", protocol: ICMP}, {port: "22", protocol: SCTP}]}]
  ingress:
  - {}
`;

const CCNP_EXAMPLES = `apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: cilium-health-checks}
spec:
  endpointSelector:
    matchLabels: {"reserved:health": ""}
  ingress:
  - fromEntities: [remote-node]
  egress:
  - toEntities: [remote-node, cluster-mesh]
---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: host-fw, namespace: ignored-for-cluster-scoped}
spec:
  nodeSelector:
    matchLabels: {node-role.kubernetes.io/control-plane: ""}
  ingress:
  - fromEntities: [cluster]
  - toPorts: [{ports: [{port: "22", protocol: TCP}, {port: "6443", protocol: TCP}]}]
`;

const NETPOL_EXAMPLES = `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: default-deny-all}
spec:
  podSelector: {}
  policyTypes: [Ingress, Egress]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: test-network-policy, namespace: default}
spec:
  podSelector:
    matchLabels: {role: db}
  policyTypes: [Ingress, Egress]
  ingress:
  - from:
    - ipBlock:
        cidr: 172.17.0.0/16
        except: [172.17.1.0/24]
    - namespaceSelector:
        matchLabels: {project: myproject}
      podSelector:
        matchExpressions: [{key: role, operator: NotIn, values: [test]}]
    - podSelector:
        matchLabels: {role: frontend}
    ports:
    - {protocol: TCP, port: 6379}
  egress:
  - to:
    - ipBlock: {cidr: 10.0.0.0/24}
    ports:
    - {protocol: TCP, port: 32000, endPort: 32768}
    - {port: dns, protocol: UDP}
    - {}
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: egress-only}
spec:
  podSelector: {matchLabels: {app: x}}
  egress:
  - {}
`;

void describe('registry: policy kinds', () => {
  it('are registered with their resources, scopes and short names', () => {
    const rows = (
      ['CiliumNetworkPolicy', 'CiliumClusterwideNetworkPolicy', 'NetworkPolicy'] as const
    )
      .map((k) => kindInfo(k))
      .map((k) => [k.kind, k.apiVersions, k.resource, k.namespaced, k.shortNames]);
    assert.deepEqual(rows, [
      ['CiliumNetworkPolicy', ['cilium.io/v2'], 'ciliumnetworkpolicies', true, ['cnp', 'ciliumnp']],
      [
        'CiliumClusterwideNetworkPolicy',
        ['cilium.io/v2'],
        'ciliumclusterwidenetworkpolicies',
        false,
        ['ccnp'],
      ],
      ['NetworkPolicy', ['networking.k8s.io/v1'], 'networkpolicies', true, ['netpol']],
    ]);
    for (const [name, kind] of [
      ['cnp', 'CiliumNetworkPolicy'],
      ['ciliumnp', 'CiliumNetworkPolicy'],
      ['ccnp', 'CiliumClusterwideNetworkPolicy'],
      ['ciliumclusterwidenetworkpolicies', 'CiliumClusterwideNetworkPolicy'],
      ['netpol', 'NetworkPolicy'],
      ['networkpolicies.networking.k8s.io', 'NetworkPolicy'],
    ]) {
      assert.equal(resolveKindName(name ?? '')?.kind, kind, name);
    }
  });

  it("accepts the guide's allow-cross-cluster policy as written", () => {
    const [policy] = accept(ALLOW_CROSS_CLUSTER) as CiliumNetworkPolicy[];
    assert.deepEqual(policy, {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: {
        name: 'allow-cross-cluster',
        namespace: 'default',
        description: 'Allow x-wing in cluster1 to contact rebel-base in cluster2',
      },
      spec: {
        endpointSelector: {
          matchLabels: { name: 'x-wing', 'io.cilium.k8s.policy.cluster': 'cluster1' },
        },
        egress: [
          {
            toEndpoints: [
              { matchLabels: { name: 'rebel-base', 'io.cilium.k8s.policy.cluster': 'cluster2' } },
            ],
          },
        ],
      },
    });
  });

  it("accepts Cilium's usual CNP shapes: labels, ports, ranges, CIDRs, entities, deny, specs", () => {
    const policies = accept(CILIUM_EXAMPLES) as CiliumNetworkPolicy[];
    assert.deepEqual(
      policies.map((p) => [p.metadata.namespace, p.metadata.name]),
      [
        ['production', 'allow-cross-cluster'],
        ['default', 'l4-rule'],
        ['default', 'cidr-rule'],
        ['default', 'multi-rule'],
      ],
    );
    // Stored as written: no defaults are invented for Cilium rules.
    assert.deepEqual(policies[1]?.spec?.ingress?.[0]?.toPorts?.[0]?.ports, [
      { port: '80', protocol: 'TCP' },
      { port: '8080', endPort: 8090, protocol: 'ANY' },
      { port: 'http-alt' },
      { port: '53', protocol: 'UDP' },
    ]);
    assert.equal(policies[3]?.spec, undefined);
    assert.equal(policies[3]?.specs?.length, 2);
  });

  it('accepts CCNPs selecting endpoints or nodes, and drops a namespace on them', () => {
    const policies = accept(CCNP_EXAMPLES) as CiliumClusterwideNetworkPolicy[];
    assert.deepEqual(
      policies.map((p) => [p.metadata.name, p.metadata.namespace, Object.keys(p.spec ?? {})[0]]),
      [
        ['cilium-health-checks', undefined, 'endpointSelector'],
        ['host-fw', undefined, 'nodeSelector'],
      ],
    );
  });

  it('accepts NetworkPolicies and defaults protocol and policyTypes as the API server does', () => {
    const policies = accept(NETPOL_EXAMPLES) as NetworkPolicy[];
    assert.deepEqual(
      policies.map((p) => p.spec.policyTypes),
      [
        ['Ingress', 'Egress'],
        ['Ingress', 'Egress'],
        ['Ingress', 'Egress'],
      ],
    );
    assert.deepEqual(policies[1]?.spec.egress?.[0]?.ports, [
      { protocol: 'TCP', port: 32000, endPort: 32768 },
      { port: 'dns', protocol: 'UDP' },
      { protocol: 'TCP' },
    ]);
    const [ingressOnly] = accept(netpol('  podSelector: {}\n  ingress: [{}]\n')) as NetworkPolicy[];
    assert.deepEqual(ingressOnly?.spec.policyTypes, ['Ingress']);
    // Validating a stored object again changes nothing.
    const again = validateObject(policies[1]);
    assert.ok(again.ok, 'again.ok');
    assert.deepEqual(again.object, policies[1]);
  });

  it('refuses bad CNP/CCNP input with one line naming document, field and reason', () => {
    const cases: [string, string][] = [
      [
        cnp('  endpointSelector: {}\n  ingress:\n  - fromEndpoint: [{}]\n'),
        'spec.ingress[0].fromEndpoint: unknown field',
      ],
      [
        cnp('  endpointSelector: {matchLabel: {app: x}}\n'),
        'spec.endpointSelector.matchLabel: unknown field',
      ],
      [
        `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nrules: []\nspec: {endpointSelector: {}}\n`,
        'rules: unknown field',
      ],
      [
        cnp(
          '  endpointSelector:\n    matchExpressions: [{key: app, operator: Equals, values: [x]}]\n',
        ),
        'spec.endpointSelector.matchExpressions[0].operator: expected one of "In", "NotIn", "Exists", "DoesNotExist", received "Equals"',
      ],
      [
        cnp(
          '  endpointSelector:\n    matchExpressions: [{key: app, operator: Exists, values: [x]}]\n',
        ),
        'spec.endpointSelector.matchExpressions[0].values: must not be set when operator is Exists',
      ],
      [
        cnp('  endpointSelector:\n    matchExpressions: [{key: app, operator: NotIn}]\n'),
        'spec.endpointSelector.matchExpressions[0].values: must not be empty when operator is NotIn',
      ],
      [
        cnp('  endpointSelector: {}\n  egress:\n  - toCIDR: [10.0.0.0/33]\n'),
        'spec.egress[0].toCIDR[0]: must be a valid CIDR (address/prefix-length) or IP address, received "10.0.0.0/33"',
      ],
      [
        cnp(
          '  endpointSelector: {}\n  egress:\n  - toCIDRSet: [{cidr: 10.0.0.0/16, except: [10.1.0.0/24]}]\n',
        ),
        'spec.egress[0].toCIDRSet[0].except[0]: must lie inside cidr 10.0.0.0/16, received "10.1.0.0/24"',
      ],
      [
        cnp('  endpointSelector: {}\n  egress:\n  - toEntities: [everything]\n'),
        'spec.egress[0].toEntities[0]: expected one of "host", "remote-node", "cluster", "world", "world-ipv4", "world-ipv6", "all", "health", "kube-apiserver", "cluster-mesh", "init", "ingress", "unmanaged", "none", received "everything"',
      ],
      [
        cnp(
          '  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: "80", endPort: 79}]}]\n',
        ),
        'spec.ingress[0].toPorts[0].ports[0].endPort: must be >= port (80), received 79',
      ],
      [
        cnp(
          '  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: "80", protocol: HTTP}]}]\n',
        ),
        'spec.ingress[0].toPorts[0].ports[0].protocol: expected one of "TCP", "UDP", "SCTP", "ICMP", "ICMPV6", "ANY", received "HTTP"',
      ],
      [
        cnp('  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: 80}]}]\n'),
        'spec.ingress[0].toPorts[0].ports[0].port: expected string, received number',
      ],
      [
        cnp('  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: "65536"}]}]\n'),
        `spec.ingress[0].toPorts[0].ports[0].port: must be a port number (0-65535) or a port name (at most 15 characters: a-z, 0-9 and '-', with a letter), received "65536"`,
      ],
      [
        cnp(
          '  endpointSelector: {}\n  ingress:\n  - toPorts: [{ports: [{port: http, endPort: 90}]}]\n',
        ),
        'spec.ingress[0].toPorts[0].ports[0].endPort: requires a numeric port (a range cannot start at a named port), received 90',
      ],
      [
        cnp('  endpointSelector: {}\n  egress:\n  - toFQDNs: [{matchName: cilium.io}]\n'),
        'spec.egress[0].toFQDNs: toFQDNs is not supported (only L3/L4 policy is enforced)',
      ],
      [
        cnp(
          '  endpointSelector: {}\n  egress:\n  - toPorts:\n    - ports: [{port: "80"}]\n      rules: {http: [{method: GET}]}\n',
        ),
        'spec.egress[0].toPorts[0].rules: L7 rules are not supported (only L3/L4 policy is enforced)',
      ],
      [
        cnp(
          '  endpointSelector: {}\n  egress:\n  - toServices: [{k8sService: {serviceName: a, namespace: b}}]\n',
        ),
        'spec.egress[0].toServices: toServices is not supported (only L3/L4 policy is enforced)',
      ],
      [
        cnp('  endpointSelector: {}\n  ingress:\n  - fromRequires: [{matchLabels: {env: prod}}]\n'),
        'spec.ingress[0].fromRequires: fromRequires is not supported (removed from Cilium in 1.19)',
      ],
      [
        cnp('  endpointSelector: {}\n  ingress:\n  - icmps: [{fields: [{type: 8}]}]\n'),
        'spec.ingress[0].icmps: icmps is not supported (only L3/L4 policy is enforced)',
      ],
      [
        cnp('  endpointSelector: {}\n  ingress:\n  - authentication: {mode: required}\n'),
        'spec.ingress[0].authentication: authentication is not supported (only L3/L4 policy is enforced)',
      ],
      [
        cnp(
          '  endpointSelector: {}\n  ingress:\n  - fromEndpoints: [{}]\n    fromCIDR: [10.0.0.0/8]\n',
        ),
        'spec.ingress[0].fromCIDR: combining fromEndpoints and fromCIDR is not supported yet; write them as separate rules',
      ],
      [
        cnp('  nodeSelector: {}\n'),
        'spec.nodeSelector: only a CiliumClusterwideNetworkPolicy may select nodes; use endpointSelector',
      ],
      [
        cnp('  ingress: [{fromEntities: [world]}]\n'),
        'spec.endpointSelector: required: a rule selects its subjects with endpointSelector',
      ],
      [
        ccnp('  endpointSelector: {}\n  nodeSelector: {}\n'),
        'spec.nodeSelector: endpointSelector and nodeSelector are mutually exclusive',
      ],
      [
        ccnp('  ingress: [{fromEntities: [world]}]\n'),
        'spec.endpointSelector: required: a rule selects its subjects with endpointSelector or nodeSelector',
      ],
      [
        ccnp('  endpointSelector: {}\n  enableDefaultDeny: {ingress: yes-please}\n'),
        'spec.enableDefaultDeny.ingress: expected boolean, received string',
      ],
      [
        `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\n`,
        'spec: required: a rule in spec, or a list of rules in specs',
      ],
      [
        `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspecs: []\n`,
        'spec: required: a rule in spec, or a list of rules in specs',
      ],
      [
        `apiVersion: cilium.io/v2\nkind: CiliumNetworkPolicy\nmetadata: {name: p}\nspecs:\n- endpointSelector: {}\n- endpointSelector: {}\n  egress: [{toGroups: [{aws: {}}]}]\n`,
        'specs[1].egress[0].toGroups: toGroups is not supported (only L3/L4 policy is enforced)',
      ],
    ];
    for (const [yaml, reason] of cases) {
      const kind = yaml.includes('Clusterwide')
        ? 'CiliumClusterwideNetworkPolicy p'
        : 'CiliumNetworkPolicy default/p';
      assert.equal(refuse(yaml), `bad.yaml: document 1 (${kind}): ${reason}`);
    }
  });

  it('refuses bad NetworkPolicies as the Kubernetes API server would', () => {
    const cases: [string, string][] = [
      [netpol('  ingress: []\n'), 'spec.podSelector: required'],
      [netpol('  podSelector: {}\n  ingres: []\n'), 'spec.ingres: unknown field'],
      [
        netpol('  podSelector: {}\n  policyTypes: [Ingress, Both]\n'),
        'spec.policyTypes[1]: expected one of "Ingress", "Egress", received "Both"',
      ],
      [
        netpol(
          '  podSelector: {}\n  ingress:\n  - from:\n    - podSelector: {}\n      ipBlock: {cidr: 10.0.0.0/8}\n',
        ),
        'spec.ingress[0].from[0].ipBlock: may not be combined with podSelector or namespaceSelector',
      ],
      [
        netpol('  podSelector: {}\n  ingress:\n  - from: [{}]\n'),
        'spec.ingress[0].from[0]: must specify a peer: podSelector, namespaceSelector or ipBlock',
      ],
      [
        netpol('  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.1}}]\n'),
        'spec.egress[0].to[0].ipBlock.cidr: must be a valid CIDR (address/prefix-length), received "10.0.0.1"',
      ],
      [
        netpol(
          '  podSelector: {}\n  egress:\n  - to: [{ipBlock: {cidr: 10.0.0.0/24, except: [10.0.0.0/24]}}]\n',
        ),
        'spec.egress[0].to[0].ipBlock.except[0]: must be a strict subset of cidr 10.0.0.0/24, received "10.0.0.0/24"',
      ],
      [
        netpol('  podSelector: {}\n  egress:\n  - ports: [{port: 80, endPort: 79}]\n'),
        'spec.egress[0].ports[0].endPort: must be >= port (80), received 79',
      ],
      [
        netpol('  podSelector: {}\n  egress:\n  - ports: [{port: http, endPort: 90}]\n'),
        'spec.egress[0].ports[0].endPort: may not be specified when port is non-numeric, received 90',
      ],
      [
        netpol('  podSelector: {}\n  egress:\n  - ports: [{endPort: 90}]\n'),
        'spec.egress[0].ports[0].endPort: may not be specified when port is not specified, received 90',
      ],
      [
        netpol('  podSelector: {}\n  egress:\n  - ports: [{protocol: ICMP}]\n'),
        'spec.egress[0].ports[0].protocol: expected one of "TCP", "UDP", "SCTP", received "ICMP"',
      ],
      [
        netpol(
          '  podSelector:\n    matchExpressions: [{key: app, operator: DoesNotExist, values: [a]}]\n',
        ),
        'spec.podSelector.matchExpressions[0].values: must not be set when operator is DoesNotExist',
      ],
    ];
    for (const [yaml, reason] of cases) {
      assert.equal(refuse(yaml), `bad.yaml: document 1 (NetworkPolicy default/p): ${reason}`);
    }
  });

  it('writes nothing when one policy of a multi-document apply is bad', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    const good = accept(`${ALLOW_CROSS_CLUSTER}---\n${CCNP_EXAMPLES}---\n${NETPOL_EXAMPLES}`);
    const bad = {
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'fqdn' },
      spec: { endpointSelector: {}, egress: [{ toFQDNs: [{ matchName: 'cilium.io' }] }] },
    };
    await assert.rejects(registry.apply([...(good as RegistryObject[]), bad]), (e: unknown) => {
      assert.ok(
        isClusterMeshError(e, ErrorCode.InvalidArgument),
        'isClusterMeshError(e, ErrorCode.InvalidArgument)',
      );
      assert.equal(
        e.message,
        'CiliumNetworkPolicy default/fqdn: spec.egress[0].toFQDNs: toFQDNs is not supported (only L3/L4 policy is enforced)',
      );
      return true;
    });
    assert.deepEqual((await backend.list('registry/')).kvs, []);
    // The good ones alone apply, and read back typed.
    await registry.apply(good as RegistryObject[]);
    const stored = await registry.list('NetworkPolicy');
    assert.deepEqual(
      stored.map((p) => [p.metadata.name, p.spec.podSelector]),
      [
        ['default-deny-all', {}],
        ['egress-only', { matchLabels: { app: 'x' } }],
        ['test-network-policy', { matchLabels: { role: 'db' } }],
      ],
    );
  });

  it('exports types with the API field names, so engine code reads them as written', () => {
    const rule: PolicyRule = {
      endpointSelector: { matchLabels: { app: 'backend' } },
      ingress: [
        {
          fromEndpoints: [{ matchExpressions: [{ key: 'app', operator: 'In', values: ['a'] }] }],
          toPorts: [{ ports: [{ port: '80', endPort: 90, protocol: 'TCP' }] }],
        },
      ],
      egressDeny: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }] }],
      enableDefaultDeny: { ingress: true },
    };
    const r = validateObject({
      apiVersion: 'cilium.io/v2',
      kind: 'CiliumNetworkPolicy',
      metadata: { name: 'typed' },
      spec: rule,
    });
    assert.ok(r.ok, 'r.ok');
    assert.deepEqual((r.object as CiliumNetworkPolicy).spec, rule);
  });

  it('problems are reported as field: reason for API callers too', () => {
    const r = validateObject({
      apiVersion: 'networking.k8s.io/v1',
      kind: 'NetworkPolicy',
      metadata: { name: 'p' },
      spec: { podSelector: { matchLabels: { 'bad key!': 'x' } } },
    });
    assert.ok(!r.ok, '!r.ok');
    assert.match(formatProblem(r.problem), /^spec\.podSelector\.matchLabels\["bad key!"\]: /);
  });
});

void describe('registry printers: policy kinds', () => {
  const NOW = new Date('2026-11-23T10:00:00Z');
  const created = '2026-11-23T09:59:00Z';

  it('cnp and ccnp: NAME AGE VALID, as the Cilium CRDs declare', () => {
    const policies = [
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: 'allow-cross-cluster', namespace: 'default', creationTimestamp: created },
        spec: { endpointSelector: {} },
      },
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: 'rejected', namespace: 'empire', creationTimestamp: created },
        spec: { endpointSelector: {} },
        status: { conditions: [{ type: 'Valid', status: 'False' }] },
      },
    ];
    assert.deepEqual(
      formatTable(kindInfo('CiliumNetworkPolicy'), policies, { now: NOW, allNamespaces: true })
        .trimEnd()
        .split('\n'),
      [
        'NAMESPACE   NAME                  AGE   VALID',
        'default     allow-cross-cluster   60s   True',
        'empire      rejected              60s   False',
      ],
    );
    assert.deepEqual(
      formatTable(
        kindInfo('CiliumClusterwideNetworkPolicy'),
        [
          {
            apiVersion: 'cilium.io/v2',
            kind: 'CiliumClusterwideNetworkPolicy',
            metadata: { name: 'host-fw', creationTimestamp: created },
            spec: { nodeSelector: {} },
          },
        ],
        { now: NOW, allNamespaces: true },
      )
        .trimEnd()
        .split('\n'),
      ['NAME      AGE   VALID', 'host-fw   60s   True'],
    );
  });

  it('netpol: NAME POD-SELECTOR AGE, the selector as kubectl prints it', () => {
    const policies = accept(NETPOL_EXAMPLES).map((p) => ({
      ...(p as NetworkPolicy),
      metadata: { ...(p as NetworkPolicy).metadata, creationTimestamp: created },
    }));
    assert.deepEqual(
      formatTable(kindInfo('NetworkPolicy'), policies, { now: NOW }).trimEnd().split('\n'),
      [
        'NAME                  POD-SELECTOR   AGE',
        'default-deny-all      <none>         60s',
        'test-network-policy   role=db        60s',
        'egress-only           app=x          60s',
      ],
    );
    assert.equal(
      formatLabelSelector({
        matchLabels: { tier: 'db', app: 'x' },
        matchExpressions: [
          { key: 'env', operator: 'NotIn', values: ['test', 'dev'] },
          { key: 'zone', operator: 'In', values: ['b', 'a'] },
          { key: 'canary', operator: 'DoesNotExist' },
          { key: 'team', operator: 'Exists' },
        ],
      }),
      'app=x,!canary,env notin (dev,test),team,tier=db,zone in (a,b)',
    );
  });
});

void describe('clustermesh apply/get with policies (memory kvstore)', () => {
  let dir = '';
  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'registry-policy-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });
  const run = (...argv: string[]): Promise<CapturedRun> =>
    runCliCaptured([...argv, '--kvstore', 'memory']);

  const MANIFEST = `${ALLOW_CROSS_CLUSTER}---
apiVersion: cilium.io/v2
kind: CiliumClusterwideNetworkPolicy
metadata: {name: cluster-only}
spec:
  endpointSelector: {}
  ingress: [{fromEntities: [cluster]}]
---
apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata: {name: db, namespace: empire}
spec:
  podSelector: {matchLabels: {role: db}}
  ingress: [{from: [{podSelector: {matchLabels: {role: api}}}]}]
`;

  it('a bad policy in document 4 of 4 writes nothing and names file, document and field', async () => {
    const path = join(dir, 'bad.yaml');
    await writeFile(
      path,
      `${MANIFEST}---
apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata: {name: l7}
spec:
  endpointSelector: {}
  egress:
  - toPorts: [{ports: [{port: "80"}], rules: {http: [{method: GET}]}}]
`,
    );
    const r = await run('apply', '-f', path);
    assert.deepEqual(r, {
      code: 1,
      stdout: '',
      stderr: `clustermesh: ${path}: document 4 (CiliumNetworkPolicy default/l7): spec.egress[0].toPorts[0].rules: L7 rules are not supported (only L3/L4 policy is enforced)\n`,
    });
    const keys = sharedMemoryStore('default')
      .range('registry/', undefined, 0)
      .result.kvs.map((kv) => kv.key);
    assert.ok(!keys.some((k) => k.includes('policies')), keys.join(','));
  });

  it('applies the good ones and prints them with kubectl columns', async () => {
    const path = join(dir, 'good.yaml');
    await writeFile(path, MANIFEST);
    assert.deepEqual(await run('apply', '-f', path), {
      code: 0,
      stdout:
        'ciliumnetworkpolicy/allow-cross-cluster created\n' +
        'ciliumclusterwidenetworkpolicy/cluster-only created\n' +
        'networkpolicy/db created\n',
      stderr: '',
    });
    const cnps = await run('get', 'cnp');
    assert.match(cnps.stdout, /^NAME {18}AGE +VALID\nallow-cross-cluster {3}\d+s +True\n$/);
    const ccnps = await run('get', 'ccnp', '-A');
    assert.match(ccnps.stdout, /^NAME {11}AGE +VALID\ncluster-only {3}\d+s +True\n$/);
    const netpols = await run('get', 'netpol', '-n', 'empire');
    assert.match(netpols.stdout, /^NAME {3}POD-SELECTOR {3}AGE\ndb {5}role=db {8}\d+s\n$/);
  });
});
