import { describe, it } from 'node:test';
import assert from 'node:assert/strict';
import type { NamedPorts } from '../../src/policy/engine.js';
import type { Direction, Protocol } from '../../src/policy/rules.js';
import { ccnp, cnp, engineWith, knp, peer } from './policy-fixtures.js';

/** ALLOWED; DENIED = no rule allows (POLICY_DENIED); DENY = a deny rule matched (POLICY_DENY). */
type Expect = 'ALLOWED' | 'DENIED' | 'DENY';

interface Case {
  name: string;
  policies: unknown[];
  src: string;
  dst: string;
  port: number;
  proto?: Protocol;
  named?: NamedPorts;
  direction?: Direction;
  /** One value for both settings, or [policyDefaultLocalCluster=true, =false]. */
  expect: Expect | [Expect, Expect];
}

const ALLOW_FRONTEND = cnp('allow-frontend', 'default', {
  endpointSelector: { matchLabels: { app: 'backend' } },
  ingress: [{ fromEndpoints: [{ matchLabels: { app: 'frontend' } }] }],
});

const backendIngress = (name: string, ingress: unknown[], extra: object = {}): unknown =>
  cnp(name, 'default', {
    endpointSelector: { matchLabels: { app: 'backend' } },
    ingress,
    ...extra,
  });

const frontendEgress = (name: string, egress: unknown[], extra: object = {}): unknown =>
  cnp(name, 'default', {
    endpointSelector: { matchLabels: { app: 'frontend' } },
    egress,
    ...extra,
  });

const F = 'cluster1/default/frontend';
const B = 'cluster1/default/backend';
const D = 'cluster1/default/db';

const CASES: Case[] = [
  // No policy: nothing is enforced.
  { name: 'no policy', policies: [], src: F, dst: B, port: 80, expect: 'ALLOWED' },
  {
    name: 'no policy, remote peer',
    policies: [],
    src: 'cluster2/default/frontend',
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },

  // fromEndpoints, namespace and cluster defaulting.
  {
    name: 'CNP fromEndpoints: same ns, local',
    policies: [ALLOW_FRONTEND],
    src: F,
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'CNP fromEndpoints: other app',
    policies: [ALLOW_FRONTEND],
    src: D,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'CNP fromEndpoints: other namespace',
    policies: [ALLOW_FRONTEND],
    src: 'cluster1/prod/frontend',
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'CNP fromEndpoints: remote cluster, no cluster key',
    policies: [ALLOW_FRONTEND],
    src: 'cluster2/default/frontend',
    dst: B,
    port: 80,
    expect: ['DENIED', 'ALLOWED'],
  },
  {
    name: 'CNP fromEndpoints: world',
    policies: [ALLOW_FRONTEND],
    src: 'ip:8.8.8.8',
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'CNP subject in another namespace is not selected',
    policies: [ALLOW_FRONTEND],
    src: D,
    dst: 'cluster1/prod/backend',
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'CNP subject of another cluster is enforced there, not here',
    policies: [ALLOW_FRONTEND],
    src: D,
    dst: 'cluster2/default/backend',
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'explicit peer namespace',
    policies: [
      backendIngress('ns', [
        {
          fromEndpoints: [
            { matchLabels: { app: 'frontend', 'k8s:io.kubernetes.pod.namespace': 'prod' } },
          ],
        },
      ]),
    ],
    src: 'cluster1/prod/frontend',
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'explicit peer namespace excludes the policy namespace',
    policies: [
      backendIngress('ns', [
        {
          fromEndpoints: [
            { matchLabels: { app: 'frontend', 'io.kubernetes.pod.namespace': 'prod' } },
          ],
        },
      ]),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'namespace labels in a CNP peer skip namespace defaulting',
    policies: [
      backendIngress('nsl', [
        { fromEndpoints: [{ matchLabels: { 'io.cilium.k8s.namespace.labels.env': 'prod' } }] },
      ]),
    ],
    src: 'cluster1/prod/db',
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'namespace labels, remote cluster',
    policies: [
      backendIngress('nsl', [
        { fromEndpoints: [{ matchLabels: { 'io.cilium.k8s.namespace.labels.env': 'prod' } }] },
      ]),
    ],
    src: 'cluster2/prod/db',
    dst: B,
    port: 80,
    expect: ['DENIED', 'ALLOWED'],
  },
  {
    name: 'CNP subject with a foreign namespace key selects nothing',
    policies: [
      cnp('x', 'default', {
        endpointSelector: { matchLabels: { 'io.kubernetes.pod.namespace': 'prod' } },
        ingress: [{}],
      }),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },

  // matchExpressions and sources.
  ...(() => {
    const expr = (e: object): unknown =>
      backendIngress('expr', [{ fromEndpoints: [{ matchExpressions: [e] }] }]);
    const inApps = expr({ key: 'app', operator: 'In', values: ['frontend', 'db'] });
    const notInTier = expr({ key: 'tier', operator: 'NotIn', values: ['web'] });
    const existsTier = expr({ key: 'tier', operator: 'Exists' });
    const noTier = expr({ key: 'tier', operator: 'DoesNotExist' });
    return [
      { name: 'In: listed', policies: [inApps], src: D, dst: B, port: 80, expect: 'ALLOWED' },
      {
        name: 'In: not listed',
        policies: [inApps],
        src: 'cluster1/default/backend',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'In: remote',
        policies: [inApps],
        src: 'cluster2/default/db',
        dst: B,
        port: 80,
        expect: ['DENIED', 'ALLOWED'],
      },
      {
        name: 'NotIn: value listed',
        policies: [notInTier],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'NotIn: key absent matches',
        policies: [notInTier],
        src: D,
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      { name: 'Exists', policies: [existsTier], src: F, dst: B, port: 80, expect: 'ALLOWED' },
      {
        name: 'Exists: key absent',
        policies: [existsTier],
        src: D,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      { name: 'DoesNotExist', policies: [noTier], src: D, dst: B, port: 80, expect: 'ALLOWED' },
      {
        name: 'DoesNotExist: key present',
        policies: [noTier],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
    ] satisfies Case[];
  })(),
  {
    name: 'k8s: source matches the pod label',
    policies: [
      backendIngress('src', [{ fromEndpoints: [{ matchLabels: { 'k8s:app': 'frontend' } }] }]),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'any: source matches the pod label',
    policies: [
      backendIngress('src', [{ fromEndpoints: [{ matchLabels: { 'any:app': 'frontend' } }] }]),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'another source does not match a k8s label',
    policies: [
      backendIngress('src', [
        { fromEndpoints: [{ matchLabels: { 'container:app': 'frontend' } }] },
      ]),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'reserved: peer selector is not namespace/cluster defaulted',
    policies: [
      frontendEgress('res', [{ toEndpoints: [{ matchLabels: { 'reserved:remote-node': '' } }] }]),
    ],
    src: F,
    dst: 'remote-node',
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'empty fromEndpoints selector = pods of the namespace (local cluster by default)',
    policies: [backendIngress('empty', [{ fromEndpoints: [{}] }])],
    src: 'cluster2/default/db',
    dst: B,
    port: 80,
    expect: ['DENIED', 'ALLOWED'],
  },
  {
    name: 'empty fromEndpoints selector does not match world',
    policies: [backendIngress('empty', [{ fromEndpoints: [{}] }])],
    src: 'ip:8.8.8.8',
    dst: B,
    port: 80,
    expect: 'DENIED',
  },

  // Cross-cluster selection.
  {
    name: 'seed allow-cross-cluster: frontend of cluster-a',
    policies: [
      cnp('allow-cross-cluster', 'production', {
        endpointSelector: { matchLabels: { app: 'backend' } },
        ingress: [
          {
            fromEndpoints: [
              { matchLabels: { app: 'frontend', 'io.cilium.k8s.policy.cluster': 'cluster-a' } },
            ],
          },
        ],
      }),
    ],
    src: 'cluster-a/production/frontend',
    dst: 'cluster1/production/backend',
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'seed allow-cross-cluster: local frontend is not cluster-a',
    policies: [
      cnp('allow-cross-cluster', 'production', {
        endpointSelector: { matchLabels: { app: 'backend' } },
        ingress: [
          {
            fromEndpoints: [
              { matchLabels: { app: 'frontend', 'io.cilium.k8s.policy.cluster': 'cluster-a' } },
            ],
          },
        ],
      }),
    ],
    src: 'cluster1/production/frontend',
    dst: 'cluster1/production/backend',
    port: 80,
    expect: 'DENIED',
  },
  ...(() => {
    const clusterExpr = (operator: string, values?: string[]): unknown =>
      backendIngress('cl', [
        {
          fromEndpoints: [
            {
              matchLabels: { app: 'frontend' },
              matchExpressions: [{ key: 'io.cilium.k8s.policy.cluster', operator, values }],
            },
          ],
        },
      ]);
    const inC = clusterExpr('In', ['cluster1', 'cluster2']);
    const notIn = clusterExpr('NotIn', ['cluster1']);
    const exists = clusterExpr('Exists');
    return [
      {
        name: 'cluster In: listed remote',
        policies: [inC],
        src: 'cluster2/default/frontend',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster In: unlisted remote',
        policies: [inC],
        src: 'cluster3/default/frontend',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      { name: 'cluster In: local', policies: [inC], src: F, dst: B, port: 80, expect: 'ALLOWED' },
      {
        name: 'cluster NotIn: local',
        policies: [notIn],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'cluster NotIn: remote',
        policies: [notIn],
        src: 'cluster3/default/frontend',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster Exists: any cluster',
        policies: [exists],
        src: 'cluster3/default/frontend',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster Exists: still namespace-defaulted',
        policies: [exists],
        src: 'cluster3/prod/frontend',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
    ] satisfies Case[];
  })(),

  // CCNP.
  ...(() => {
    const any = ccnp('any-pod', {
      endpointSelector: { matchLabels: { app: 'backend' } },
      ingress: [{ fromEndpoints: [{}] }],
    });
    return [
      {
        name: 'CCNP selects backends of every namespace',
        policies: [any],
        src: 'ip:8.8.8.8',
        dst: 'cluster1/prod/backend',
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'CCNP {} peer: pod of another namespace',
        policies: [any],
        src: 'cluster1/prod/db',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'CCNP {} peer: remote pod',
        policies: [any],
        src: 'cluster2/prod/db',
        dst: B,
        port: 80,
        expect: ['DENIED', 'ALLOWED'],
      },
      {
        name: 'CCNP {} peer: not remote-node',
        policies: [any],
        src: 'remote-node',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'CCNP {} peer: not health',
        policies: [any],
        src: 'health',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
    ] satisfies Case[];
  })(),
  {
    name: 'CCNP can select the health endpoint',
    policies: [
      ccnp('health', {
        endpointSelector: { matchLabels: { 'reserved:health': '' } },
        ingress: [{ fromEntities: ['remote-node'] }],
      }),
    ],
    src: F,
    dst: 'health',
    port: 4240,
    expect: 'DENIED',
  },
  {
    name: 'CCNP health: remote-node allowed',
    policies: [
      ccnp('health', {
        endpointSelector: { matchLabels: { 'reserved:health': '' } },
        ingress: [{ fromEntities: ['remote-node'] }],
      }),
    ],
    src: 'remote-node',
    dst: 'health',
    port: 4240,
    expect: 'ALLOWED',
  },
  {
    name: 'CNP {} subject never selects health',
    policies: [cnp('all', 'default', { endpointSelector: {}, ingress: [{}] })],
    src: F,
    dst: 'health',
    port: 4240,
    expect: 'ALLOWED',
  },

  // Entities.
  ...(() => {
    const to = (entities: string[]): unknown => frontendEgress('ent', [{ toEntities: entities }]);
    const from = (entities: string[]): unknown =>
      backendIngress('ent', [{ fromEntities: entities }]);
    return [
      {
        name: 'world: external IP',
        policies: [to(['world'])],
        src: F,
        dst: 'ip:8.8.8.8',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: 'world: world identity',
        policies: [to(['world'])],
        src: F,
        dst: 'world',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: 'world: not a pod',
        policies: [to(['world'])],
        src: F,
        dst: B,
        port: 443,
        expect: 'DENIED',
      },
      {
        name: 'world: not remote-node',
        policies: [to(['world'])],
        src: F,
        dst: 'remote-node',
        port: 443,
        expect: 'DENIED',
      },
      {
        name: 'host',
        policies: [to(['host'])],
        src: F,
        dst: 'host',
        port: 10250,
        expect: 'ALLOWED',
      },
      {
        name: 'host: not remote-node',
        policies: [to(['host'])],
        src: F,
        dst: 'remote-node',
        port: 10250,
        expect: 'DENIED',
      },
      {
        name: 'remote-node: also the apiserver node',
        policies: [to(['remote-node'])],
        src: F,
        dst: 'kube-apiserver',
        port: 6443,
        expect: 'ALLOWED',
      },
      {
        name: 'kube-apiserver',
        policies: [to(['kube-apiserver'])],
        src: F,
        dst: 'kube-apiserver',
        port: 6443,
        expect: 'ALLOWED',
      },
      {
        name: 'kube-apiserver: not other nodes',
        policies: [to(['kube-apiserver'])],
        src: F,
        dst: 'remote-node',
        port: 6443,
        expect: 'DENIED',
      },
      {
        name: 'health',
        policies: [from(['health'])],
        src: 'health',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster: local pod of any namespace',
        policies: [to(['cluster'])],
        src: F,
        dst: 'cluster1/prod/db',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster: remote pod never (flag-independent)',
        policies: [to(['cluster'])],
        src: F,
        dst: 'cluster2/default/db',
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'cluster: remote-node',
        policies: [to(['cluster'])],
        src: F,
        dst: 'remote-node',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster: host',
        policies: [to(['cluster'])],
        src: F,
        dst: 'host',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster: health',
        policies: [to(['cluster'])],
        src: F,
        dst: 'health',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster: ingress',
        policies: [to(['cluster'])],
        src: F,
        dst: 'ingress',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster: not world',
        policies: [to(['cluster'])],
        src: F,
        dst: 'ip:8.8.8.8',
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'cluster-mesh: remote pod',
        policies: [to(['cluster-mesh'])],
        src: F,
        dst: 'cluster3/prod/db',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster-mesh: local pod',
        policies: [to(['cluster-mesh'])],
        src: F,
        dst: D,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'cluster-mesh: not world',
        policies: [to(['cluster-mesh'])],
        src: F,
        dst: 'ip:8.8.8.8',
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'all: world',
        policies: [to(['all'])],
        src: F,
        dst: 'ip:8.8.8.8',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'all: remote pod',
        policies: [to(['all'])],
        src: F,
        dst: 'cluster2/prod/db',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'fromEntities all: remote pod in',
        policies: [from(['all'])],
        src: 'cluster3/prod/db',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'none matches nothing',
        policies: [to(['none'])],
        src: F,
        dst: 'ip:8.8.8.8',
        port: 80,
        expect: 'DENIED',
      },
    ] satisfies Case[];
  })(),

  // CIDR.
  ...(() => {
    const toCIDR = frontendEgress('cidr', [{ toCIDR: ['10.0.0.0/8', '172.16.1.1'] }]);
    const set = frontendEgress('cidrset', [
      { toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }] },
    ]);
    const zero = frontendEgress('zero', [{ toCIDR: ['0.0.0.0/0'] }]);
    const v6 = frontendEgress('v6', [
      { toCIDR: ['2001:db8::/32'] },
      { toCIDRSet: [{ cidr: '::/0', except: ['2001:db9::/32', '2001:db8::/32'] }] },
    ]);
    const from = backendIngress('fromcidr', [{ fromCIDRSet: [{ cidr: '192.168.0.0/16' }] }]);
    return [
      {
        name: 'toCIDR: inside',
        policies: [toCIDR],
        src: F,
        dst: 'ip:10.1.2.3',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: 'toCIDR: outside',
        policies: [toCIDR],
        src: F,
        dst: 'ip:192.168.1.1',
        port: 443,
        expect: 'DENIED',
      },
      {
        name: 'toCIDR: bare IP',
        policies: [toCIDR],
        src: F,
        dst: 'ip:172.16.1.1',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: 'toCIDR: bare IP neighbour',
        policies: [toCIDR],
        src: F,
        dst: 'ip:172.16.1.2',
        port: 443,
        expect: 'DENIED',
      },
      {
        name: 'toCIDR: CIDR identity',
        policies: [toCIDR],
        src: F,
        dst: 'cidr:10.5.5.5',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: 'toCIDR: never a pod',
        policies: [toCIDR],
        src: F,
        dst: B,
        port: 443,
        expect: 'DENIED',
      },
      {
        name: 'toCIDRSet except: excepted',
        policies: [set],
        src: F,
        dst: 'ip:10.1.2.3',
        port: 443,
        expect: 'DENIED',
      },
      {
        name: 'toCIDRSet except: not excepted',
        policies: [set],
        src: F,
        dst: 'ip:10.2.0.1',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: '0.0.0.0/0 = world',
        policies: [zero],
        src: F,
        dst: 'world',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: '0.0.0.0/0 external IP',
        policies: [zero],
        src: F,
        dst: 'ip:1.1.1.1',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: '0.0.0.0/0 not a remote pod',
        policies: [zero],
        src: F,
        dst: 'cluster2/default/db',
        port: 443,
        expect: 'DENIED',
      },
      {
        name: 'IPv6 toCIDR: inside',
        policies: [v6],
        src: F,
        dst: 'ip:2001:db8::1',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: 'IPv6 toCIDR: outside',
        policies: [v6],
        src: F,
        dst: 'ip:2001:db9::1',
        port: 443,
        expect: 'DENIED',
      },
      {
        name: '0.0.0.0/0 is IPv4 only',
        policies: [zero],
        src: F,
        dst: 'ip:2001:db8::1',
        port: 443,
        expect: 'DENIED',
      },
      {
        name: '::/0 is IPv6 world',
        policies: [v6],
        src: F,
        dst: 'ip:fe80::1',
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: 'fromCIDRSet: inside',
        policies: [from],
        src: 'ip:192.168.3.4',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'fromCIDRSet: outside',
        policies: [from],
        src: 'ip:10.0.0.1',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
    ] satisfies Case[];
  })(),

  // Ports.
  ...(() => {
    const p80 = backendIngress('p80', [
      {
        fromEndpoints: [{ matchLabels: { app: 'frontend' } }],
        toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }],
      },
    ]);
    const range = backendIngress('range', [
      { toPorts: [{ ports: [{ port: '8000', endPort: 8080, protocol: 'TCP' }] }] },
    ]);
    const anyProto = backendIngress('any', [
      { toPorts: [{ ports: [{ port: '53', protocol: 'ANY' }] }] },
    ]);
    const noProto = backendIngress('noproto', [{ toPorts: [{ ports: [{ port: '53' }] }] }]);
    const allTcp = backendIngress('alltcp', [
      { toPorts: [{ ports: [{ port: '0', protocol: 'TCP' }] }] },
    ]);
    const named = backendIngress('named', [{ toPorts: [{ ports: [{ port: 'http' }] }] }]);
    const namedUdp = backendIngress('named-udp', [
      { toPorts: [{ ports: [{ port: 'http', protocol: 'UDP' }] }] },
    ]);
    const http: NamedPorts = { http: { port: 8080, protocol: 'TCP' } };
    return [
      { name: 'port 80/TCP', policies: [p80], src: F, dst: B, port: 80, expect: 'ALLOWED' },
      {
        name: 'port 80/TCP: UDP',
        policies: [p80],
        src: F,
        dst: B,
        port: 80,
        proto: 'UDP',
        expect: 'DENIED',
      },
      { name: 'port 80/TCP: 81', policies: [p80], src: F, dst: B, port: 81, expect: 'DENIED' },
      {
        name: 'port 80/TCP: remote peer',
        policies: [p80],
        src: 'cluster2/default/frontend',
        dst: B,
        port: 80,
        expect: ['DENIED', 'ALLOWED'],
      },
      {
        name: 'ports without L3 allow every peer',
        policies: [range],
        src: 'ip:8.8.8.8',
        dst: B,
        port: 8000,
        expect: 'ALLOWED',
      },
      {
        name: 'ports without L3: remote pod too',
        policies: [range],
        src: 'cluster3/prod/db',
        dst: B,
        port: 8000,
        expect: 'ALLOWED',
      },
      {
        name: 'endPort is inclusive',
        policies: [range],
        src: F,
        dst: B,
        port: 8080,
        expect: 'ALLOWED',
      },
      {
        name: 'endPort: past the end',
        policies: [range],
        src: F,
        dst: B,
        port: 8081,
        expect: 'DENIED',
      },
      {
        name: 'endPort: before the start',
        policies: [range],
        src: F,
        dst: B,
        port: 7999,
        expect: 'DENIED',
      },
      {
        name: 'ANY: UDP',
        policies: [anyProto],
        src: F,
        dst: B,
        port: 53,
        proto: 'UDP',
        expect: 'ALLOWED',
      },
      {
        name: 'ANY: TCP',
        policies: [anyProto],
        src: F,
        dst: B,
        port: 53,
        proto: 'TCP',
        expect: 'ALLOWED',
      },
      {
        name: 'missing protocol = ANY',
        policies: [noProto],
        src: F,
        dst: B,
        port: 53,
        proto: 'UDP',
        expect: 'ALLOWED',
      },
      {
        name: 'port 0 = every TCP port',
        policies: [allTcp],
        src: F,
        dst: B,
        port: 31337,
        expect: 'ALLOWED',
      },
      {
        name: 'port 0/TCP: not UDP',
        policies: [allTcp],
        src: F,
        dst: B,
        port: 31337,
        proto: 'UDP',
        expect: 'DENIED',
      },
      {
        name: 'named port resolved',
        policies: [named],
        src: F,
        dst: B,
        port: 8080,
        named: http,
        expect: 'ALLOWED',
      },
      {
        name: 'named port: other number',
        policies: [named],
        src: F,
        dst: B,
        port: 80,
        named: http,
        expect: 'DENIED',
      },
      {
        name: 'named port: unresolved',
        policies: [named],
        src: F,
        dst: B,
        port: 8080,
        expect: 'DENIED',
      },
      {
        name: 'named port: protocol conflict',
        policies: [namedUdp],
        src: F,
        dst: B,
        port: 8080,
        named: http,
        expect: 'DENIED',
      },
    ] satisfies Case[];
  })(),

  {
    name: 'port rules naming no port allow nothing',
    policies: [
      backendIngress('noports', [
        { fromEndpoints: [{ matchLabels: { app: 'frontend' } }], toPorts: [{}] },
      ]),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'an empty toPorts list leaves the rule L3-only',
    policies: [
      backendIngress('l3', [
        { fromEndpoints: [{ matchLabels: { app: 'frontend' } }], toPorts: [] },
      ]),
    ],
    src: F,
    dst: B,
    port: 9999,
    proto: 'UDP',
    expect: 'ALLOWED',
  },
  // Default deny, enableDefaultDeny, deny precedence, localhost.
  {
    name: 'ingress: [{}] selects and allows nothing',
    policies: [backendIngress('dd', [{}])],
    src: F,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'fromEndpoints: [] matches nothing',
    policies: [backendIngress('dd', [{ fromEndpoints: [] }])],
    src: F,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'an egress policy leaves ingress open',
    policies: [
      cnp('eg', 'default', { endpointSelector: { matchLabels: { app: 'backend' } }, egress: [{}] }),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'enableDefaultDeny.ingress=false: others still allowed',
    policies: [
      backendIngress('nodd', [{ fromEndpoints: [{ matchLabels: { app: 'frontend' } }] }], {
        enableDefaultDeny: { ingress: false },
      }),
    ],
    src: D,
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'enableDefaultDeny.ingress=false with another default-deny rule',
    policies: [
      backendIngress('nodd', [{ fromEndpoints: [{ matchLabels: { app: 'frontend' } }] }], {
        enableDefaultDeny: { ingress: false },
      }),
      backendIngress('dd', [{ fromEntities: ['world'] }]),
    ],
    src: D,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'enableDefaultDeny.egress=false does not affect ingress',
    policies: [
      backendIngress('dd', [{ fromEntities: ['world'] }], { enableDefaultDeny: { egress: false } }),
    ],
    src: D,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'deny-only policy turns on default deny',
    policies: [
      cnp('deny', 'default', {
        endpointSelector: { matchLabels: { app: 'backend' } },
        ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'frontend' } }] }],
      }),
    ],
    src: D,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'deny-only policy: denied peer',
    policies: [
      cnp('deny', 'default', {
        endpointSelector: { matchLabels: { app: 'backend' } },
        ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'frontend' } }] }],
      }),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'DENY',
  },
  {
    name: 'deny-only policy without default deny',
    policies: [
      cnp('deny', 'default', {
        endpointSelector: { matchLabels: { app: 'backend' } },
        ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'frontend' } }] }],
        enableDefaultDeny: { ingress: false },
      }),
    ],
    src: D,
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'deny-only without default deny: remote frontend only denied when it is matched',
    policies: [
      cnp('deny', 'default', {
        endpointSelector: { matchLabels: { app: 'backend' } },
        ingressDeny: [{ fromEndpoints: [{ matchLabels: { app: 'frontend' } }] }],
        enableDefaultDeny: { ingress: false },
      }),
    ],
    src: 'cluster2/default/frontend',
    dst: B,
    port: 80,
    expect: ['ALLOWED', 'DENY'],
  },
  ...(() => {
    const l4deny = cnp('deny80', 'default', {
      endpointSelector: { matchLabels: { app: 'backend' } },
      ingressDeny: [
        {
          fromEndpoints: [{ matchLabels: { app: 'frontend' } }],
          toPorts: [{ ports: [{ port: '80', protocol: 'TCP' }] }],
        },
      ],
    });
    const ccnpDeny = ccnp('deny-all-frontends', {
      endpointSelector: { matchLabels: { app: 'backend' } },
      ingressDeny: [
        {
          fromEndpoints: [
            {
              matchLabels: { app: 'frontend' },
              matchExpressions: [{ key: 'io.cilium.k8s.policy.cluster', operator: 'Exists' }],
            },
          ],
        },
      ],
    });
    const allowWorld = frontendEgress('allow10', [{ toCIDR: ['10.0.0.0/8'] }]);
    const denyExcept = cnp('deny-except', 'default', {
      endpointSelector: { matchLabels: { app: 'frontend' } },
      egressDeny: [{ toCIDRSet: [{ cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] }] }],
    });
    return [
      {
        name: 'L4 deny beats L3 allow on its port',
        policies: [ALLOW_FRONTEND, l4deny],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENY',
      },
      {
        name: 'L4 deny leaves other ports to the allow',
        policies: [ALLOW_FRONTEND, l4deny],
        src: F,
        dst: B,
        port: 443,
        expect: 'ALLOWED',
      },
      {
        name: 'CCNP deny beats CNP allow',
        policies: [ALLOW_FRONTEND, ccnpDeny],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENY',
      },
      {
        name: 'CCNP deny with cluster Exists reaches remote',
        policies: [ccnpDeny],
        src: 'cluster3/default/frontend',
        dst: 'cluster1/prod/backend',
        port: 80,
        expect: 'DENY',
      },
      {
        name: 'deny except hole is filled by a broader allow',
        policies: [allowWorld, denyExcept],
        src: F,
        dst: 'ip:10.1.2.3',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'deny except: outside the hole',
        policies: [allowWorld, denyExcept],
        src: F,
        dst: 'ip:10.2.0.1',
        port: 80,
        expect: 'DENY',
      },
    ] satisfies Case[];
  })(),
  {
    name: 'local host always allowed in',
    policies: [backendIngress('dd', [{}])],
    src: 'host',
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },
  {
    name: 'explicit deny of the host beats allow-localhost',
    policies: [
      cnp('nohost', 'default', {
        endpointSelector: { matchLabels: { app: 'backend' } },
        ingressDeny: [{ fromEntities: ['host'] }],
      }),
    ],
    src: 'host',
    dst: B,
    port: 80,
    expect: 'DENY',
  },
  {
    name: 'remote-node gets no implicit allow',
    policies: [backendIngress('dd', [{}])],
    src: 'remote-node',
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'init endpoints are default deny',
    policies: [],
    src: F,
    dst: 'init',
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'egress enforced, ingress side only checked',
    policies: [frontendEgress('eg', [{}])],
    src: F,
    dst: B,
    port: 80,
    direction: 'ingress',
    expect: 'ALLOWED',
  },
  {
    name: 'egress side only',
    policies: [frontendEgress('eg', [{}])],
    src: F,
    dst: B,
    port: 80,
    direction: 'egress',
    expect: 'DENIED',
  },
  {
    name: 'egress and ingress must both allow',
    policies: [
      frontendEgress('eg', [{ toEndpoints: [{ matchLabels: { app: 'backend' } }] }]),
      backendIngress('in', [{ fromEndpoints: [{ matchLabels: { app: 'db' } }] }]),
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'DENIED',
  },
  {
    name: 'specs: rules are a union',
    policies: [
      {
        apiVersion: 'cilium.io/v2',
        kind: 'CiliumNetworkPolicy',
        metadata: { name: 'multi', namespace: 'default' },
        specs: [
          {
            endpointSelector: { matchLabels: { app: 'backend' } },
            ingress: [{ fromEndpoints: [{ matchLabels: { app: 'db' } }] }],
          },
          {
            endpointSelector: { matchLabels: { app: 'backend' } },
            ingress: [{ fromEndpoints: [{ matchLabels: { app: 'frontend' } }] }],
          },
        ],
      },
    ],
    src: F,
    dst: B,
    port: 80,
    expect: 'ALLOWED',
  },

  // Kubernetes NetworkPolicy.
  ...(() => {
    const pod = knp('pods', 'default', {
      podSelector: { matchLabels: { app: 'backend' } },
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'frontend' } } }] }],
    });
    const ns = knp('ns', 'default', {
      podSelector: { matchLabels: { app: 'backend' } },
      ingress: [{ from: [{ namespaceSelector: { matchLabels: { env: 'prod' } } }] }],
    });
    const anyNs = knp('anyns', 'default', {
      podSelector: {},
      ingress: [{ from: [{ namespaceSelector: {} }] }],
    });
    const both = knp('both', 'default', {
      podSelector: { matchLabels: { app: 'backend' } },
      ingress: [
        {
          from: [
            {
              namespaceSelector: { matchLabels: { env: 'prod' } },
              podSelector: { matchLabels: { app: 'frontend' } },
            },
          ],
        },
      ],
    });
    const separate = knp('sep', 'default', {
      podSelector: { matchLabels: { app: 'backend' } },
      ingress: [
        {
          from: [
            { namespaceSelector: { matchLabels: { env: 'prod' } } },
            { podSelector: { matchLabels: { app: 'frontend' } } },
          ],
        },
      ],
    });
    const remote = knp('remote', 'default', {
      podSelector: { matchLabels: { app: 'backend' } },
      ingress: [
        {
          from: [
            {
              podSelector: {
                matchLabels: { app: 'frontend', 'io.cilium.k8s.policy.cluster': 'cluster2' },
              },
            },
          ],
        },
      ],
    });
    const ip = knp('ip', 'default', {
      podSelector: { matchLabels: { app: 'backend' } },
      ingress: [{ from: [{ ipBlock: { cidr: '10.0.0.0/8', except: ['10.1.0.0/16'] } }] }],
    });
    const denyAll = knp('deny-all', 'default', { podSelector: {} });
    const emptyIngress = knp('empty', 'default', { podSelector: {}, ingress: [] });
    const allowAll = knp('allow-all', 'default', { podSelector: {}, ingress: [{}] });
    const emptyFrom = knp('empty-from', 'default', { podSelector: {}, ingress: [{ from: [] }] });
    const portsOnly = knp('ports', 'default', {
      podSelector: {},
      ingress: [{ ports: [{ port: 80 }] }],
    });
    const range = knp('range', 'default', {
      podSelector: {},
      ingress: [{ ports: [{ protocol: 'UDP', port: 5000, endPort: 5010 }] }],
    });
    const named = knp('named', 'default', {
      podSelector: {},
      ingress: [{ ports: [{ port: 'http' }] }],
    });
    const egressOnly = knp('eg', 'default', {
      podSelector: { matchLabels: { app: 'frontend' } },
      policyTypes: ['Egress'],
      egress: [],
    });
    const egressTypeIgnoresIngress = knp('eg2', 'default', {
      podSelector: { matchLabels: { app: 'backend' } },
      policyTypes: ['Egress'],
      ingress: [{ from: [{ podSelector: { matchLabels: { app: 'db' } } }] }],
    });
    const egressTo = knp('egto', 'default', {
      podSelector: { matchLabels: { app: 'frontend' } },
      egress: [
        { to: [{ podSelector: { matchLabels: { app: 'backend' } } }], ports: [{ port: 80 }] },
      ],
    });
    const egressIp = knp('egip', 'default', {
      podSelector: { matchLabels: { app: 'frontend' } },
      policyTypes: ['Egress'],
      egress: [{ to: [{ ipBlock: { cidr: '0.0.0.0/0', except: ['10.0.0.0/8'] } }] }],
    });
    const http: NamedPorts = { http: { port: 8080, protocol: 'TCP' } };
    return [
      {
        name: 'KNP podSelector peer',
        policies: [pod],
        src: F,
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP podSelector peer: other namespace',
        policies: [pod],
        src: 'cluster1/prod/frontend',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP podSelector peer: remote',
        policies: [pod],
        src: 'cluster2/default/frontend',
        dst: B,
        port: 80,
        expect: ['DENIED', 'ALLOWED'],
      },
      {
        name: 'KNP namespaceSelector',
        policies: [ns],
        src: 'cluster1/prod/db',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP namespaceSelector: not matching',
        policies: [ns],
        src: D,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP namespaceSelector: remote',
        policies: [ns],
        src: 'cluster2/prod/db',
        dst: B,
        port: 80,
        expect: ['DENIED', 'ALLOWED'],
      },
      {
        name: 'KNP namespaceSelector {}: any namespace',
        policies: [anyNs],
        src: 'cluster1/other/db',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP namespaceSelector {}: remote namespace',
        policies: [anyNs],
        src: 'cluster3/prod/db',
        dst: B,
        port: 80,
        expect: ['DENIED', 'ALLOWED'],
      },
      {
        name: 'KNP namespaceSelector {}: not world',
        policies: [anyNs],
        src: 'ip:8.8.8.8',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP namespace AND pod selector',
        policies: [both],
        src: 'cluster1/prod/frontend',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP namespace AND pod: wrong pod',
        policies: [both],
        src: 'cluster1/prod/db',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP namespace AND pod: wrong namespace',
        policies: [both],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP separate peers are ORed (ns)',
        policies: [separate],
        src: 'cluster1/prod/db',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP separate peers are ORed (pod)',
        policies: [separate],
        src: F,
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP podSelector with a cluster key: remote',
        policies: [remote],
        src: 'cluster2/default/frontend',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP podSelector with a cluster key: local',
        policies: [remote],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP ipBlock',
        policies: [ip],
        src: 'ip:10.2.0.1',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP ipBlock except',
        policies: [ip],
        src: 'ip:10.1.0.1',
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP ipBlock never admits pods',
        policies: [ip],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP no rules = ingress deny all',
        policies: [denyAll],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP no rules: egress untouched',
        policies: [denyAll],
        src: B,
        dst: 'ip:8.8.8.8',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP ingress: [] = deny all',
        policies: [emptyIngress],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP ingress: [{}] = allow all',
        policies: [allowAll],
        src: 'ip:8.8.8.8',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP ingress: [{}] admits remote pods',
        policies: [allowAll],
        src: 'cluster2/prod/db',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP from: [] = all peers',
        policies: [emptyFrom],
        src: 'cluster2/prod/db',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP ports only: 80/TCP',
        policies: [portsOnly],
        src: 'ip:8.8.8.8',
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP ports default to TCP',
        policies: [portsOnly],
        src: F,
        dst: B,
        port: 80,
        proto: 'UDP',
        expect: 'DENIED',
      },
      {
        name: 'KNP endPort',
        policies: [range],
        src: F,
        dst: B,
        port: 5010,
        proto: 'UDP',
        expect: 'ALLOWED',
      },
      {
        name: 'KNP endPort: past end',
        policies: [range],
        src: F,
        dst: B,
        port: 5011,
        proto: 'UDP',
        expect: 'DENIED',
      },
      {
        name: 'KNP named port',
        policies: [named],
        src: F,
        dst: B,
        port: 8080,
        named: http,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP named port: unresolved',
        policies: [named],
        src: F,
        dst: B,
        port: 8080,
        expect: 'DENIED',
      },
      {
        name: 'KNP policyTypes Egress, egress: [] = egress deny all',
        policies: [egressOnly],
        src: F,
        dst: 'ip:8.8.8.8',
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP policyTypes Egress: ingress open',
        policies: [egressOnly],
        src: D,
        dst: F,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP ingress section outside policyTypes is not enforced',
        policies: [egressTypeIgnoresIngress],
        src: F,
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP egress rules imply Egress',
        policies: [egressTo],
        src: F,
        dst: B,
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP egress: other port',
        policies: [egressTo],
        src: F,
        dst: B,
        port: 81,
        expect: 'DENIED',
      },
      {
        name: 'KNP egress to remote backend',
        policies: [egressTo],
        src: F,
        dst: 'cluster2/default/backend',
        port: 80,
        expect: ['DENIED', 'ALLOWED'],
      },
      {
        name: 'KNP egress ipBlock 0.0.0.0/0 except',
        policies: [egressIp],
        src: F,
        dst: 'ip:8.8.8.8',
        port: 80,
        expect: 'ALLOWED',
      },
      {
        name: 'KNP egress ipBlock except hit',
        policies: [egressIp],
        src: F,
        dst: 'ip:10.9.9.9',
        port: 80,
        expect: 'DENIED',
      },
      {
        name: 'KNP egress ipBlock: not a pod',
        policies: [egressIp],
        src: F,
        dst: B,
        port: 80,
        expect: 'DENIED',
      },
    ] satisfies Case[];
  })(),
];

const EXPECTED_REASON = { ALLOWED: null, DENIED: 'POLICY_DENIED', DENY: 'POLICY_DENY' } as const;

for (const local of [true, false]) {
  void describe(`policy verdicts, policyDefaultLocalCluster=${local}`, () => {
    for (const c of CASES) {
      const want = typeof c.expect === 'string' ? c.expect : c.expect[local ? 0 : 1];
      void it(`${c.name}: ${want}`, () => {
        const engine = engineWith(c.policies, local);
        const q = {
          src: peer(c.src),
          dst: peer(c.dst),
          dport: c.port,
          proto: c.proto ?? 'TCP',
          dstNamedPorts: c.named,
          direction: c.direction,
        };
        const v = engine.verdict(q);
        assert.equal(v.verdict, want === 'ALLOWED' ? 'ALLOWED' : 'DENIED');
        assert.equal(v.dropReason, EXPECTED_REASON[want]);
        // The trace must reach the same decision as the fast path.
        assert.equal(engine.trace(q).verdict, v.verdict);
      });
    }
  });
}
