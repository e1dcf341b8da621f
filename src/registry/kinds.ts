import { z } from 'zod';
import { parseIdentityId } from '../keyspace/identity.js';
import { ipFamily, parseCIDR, parseIP } from '../keyspace/ip.js';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import {
  DNS1035_LABEL_RULE,
  DNS1123_LABEL_RULE,
  DNS1123_SUBDOMAIN_RULE,
  isDns1035Label,
  isDns1123Label,
  isDns1123Subdomain,
  isIanaServiceName,
  labelValueProblem,
  qualifiedNameProblem,
} from './names.js';
import { SERVICE_NAME_LABEL, type KindName, type KindTypes } from './objects.js';
import type { RegistryObject } from './types.js';

/**
 * The kinds the registry stores, and their schemas. Schemas check the fields consumers
 * read (names, IPs, CIDRs, ports, enums) precisely and keep every other field as written,
 * because real manifests carry many Kubernetes fields that local mode does not use.
 * Defaults applied here (namespace `default`, protocol TCP, Service type ClusterIP, empty
 * lists) are stored, so consumers never re-default and re-applying a manifest is a no-op.
 */

// ---- field schemas ----

const nonEmpty = z.string().min(1, 'must not be empty');

/** One problem per name: empty, or breaking the rule. */
function ruleString(test: (s: string) => boolean, rule: string) {
  return z.string().superRefine((s, ctx) => {
    if (s === '') ctx.addIssue({ code: 'custom', message: 'must not be empty' });
    else if (!test(s)) ctx.addIssue({ code: 'custom', message: rule });
  });
}

const ip = z.string().refine((s) => parseIP(s) !== null, 'must be a valid IP address');
const ipv4 = z.string().refine((s) => parseIP(s)?.length === 4, 'must be a valid IPv4 address');
const ipv6 = z.string().refine((s) => {
  const b = parseIP(s);
  return b !== null && ipFamily(b) === 6;
}, 'must be a valid IPv6 address');
const cidr = z
  .string()
  .refine((s) => parseCIDR(s) !== null, 'must be a valid CIDR (address/prefix-length)');
const port = z.number().int().min(1).max(65535);
const protocol = z.enum(['TCP', 'UDP', 'SCTP']);
const encryptionKey = z.number().int().min(0).max(255);

const stringMap = z.record(z.string(), z.string());

const labels = stringMap.superRefine((map, ctx) => {
  for (const [key, value] of Object.entries(map)) {
    const problem = qualifiedNameProblem(key) ?? labelValueProblem(value);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem, path: [key] });
  }
});

const annotations = stringMap.superRefine((map, ctx) => {
  for (const key of Object.keys(map)) {
    const problem = qualifiedNameProblem(key);
    if (problem !== null) ctx.addIssue({ code: 'custom', message: problem, path: [key] });
  }
});

interface NameRule {
  readonly test: (s: string) => boolean;
  readonly rule: string;
}
const SUBDOMAIN: NameRule = { test: isDns1123Subdomain, rule: DNS1123_SUBDOMAIN_RULE };
const LABEL: NameRule = { test: isDns1123Label, rule: DNS1123_LABEL_RULE };
const DNS1035: NameRule = { test: isDns1035Label, rule: DNS1035_LABEL_RULE };
const IDENTITY_ID: NameRule = {
  test: (s) => (parseIdentityId(s) ?? 0) > 0,
  rule: 'must be the decimal numeric identity (1-4294967295, no leading zeros)',
};

const ownerReference = z.looseObject({
  apiVersion: nonEmpty,
  kind: nonEmpty,
  name: nonEmpty,
  uid: nonEmpty,
  controller: z.boolean().optional(),
  blockOwnerDeletion: z.boolean().optional(),
});

function metadata(name: NameRule) {
  return z.looseObject({
    name: ruleString(name.test, name.rule),
    namespace: ruleString(isDns1123Label, DNS1123_LABEL_RULE).optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    creationTimestamp: z.string().optional(),
    generation: z.number().int().min(0).optional(),
    labels: labels.optional(),
    annotations: annotations.optional(),
    ownerReferences: z.array(ownerReference).optional(),
  });
}

function base<K extends KindName>(kind: K, name: NameRule) {
  return z.looseObject({ apiVersion: z.string(), kind: z.literal(kind), metadata: metadata(name) });
}

// ---- Kubernetes kinds ----

const namespaceSchema: z.ZodType<KindTypes['Namespace']> = base('Namespace', LABEL);

const clusterIP = z
  .string()
  .refine(
    (s) => s === '' || s === 'None' || parseIP(s) !== null,
    'must be an IP address, "None" (headless) or empty',
  );

const targetPort = z.union([z.number(), z.string()]).superRefine((v, ctx) => {
  if (typeof v === 'number') {
    if (!Number.isInteger(v) || v < 1 || v > 65535) {
      ctx.addIssue({ code: 'custom', message: 'must be a port number (1-65535)' });
    }
  } else if (!isIanaServiceName(v)) {
    ctx.addIssue({
      code: 'custom',
      message:
        "must be a port number or a port name (at most 15 characters: a-z, 0-9 and '-', with a letter)",
    });
  }
});

const servicePort = z.looseObject({
  name: z
    .string()
    .refine((s) => s === '' || isDns1123Label(s), DNS1123_LABEL_RULE)
    .optional(),
  port,
  targetPort: targetPort.optional(),
  nodePort: port.optional(),
  protocol: protocol.default('TCP'),
  appProtocol: z.string().optional(),
});

const serviceSpec = z
  .looseObject({
    type: z.enum(['ClusterIP', 'NodePort', 'LoadBalancer', 'ExternalName']).default('ClusterIP'),
    clusterIP: clusterIP.optional(),
    clusterIPs: z.array(clusterIP).optional(),
    ports: z.array(servicePort).default([]),
    selector: labels.optional(),
    externalName: z.string().optional(),
    sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
  })
  .superRefine((spec, ctx) => {
    if (spec.type === 'ExternalName' && (spec.externalName ?? '') === '') {
      ctx.addIssue({
        code: 'custom',
        message: 'required when spec.type is ExternalName',
        path: ['externalName'],
      });
    }
    const first = spec.clusterIPs?.[0];
    if (spec.clusterIP !== undefined && first !== undefined && first !== spec.clusterIP) {
      ctx.addIssue({
        code: 'custom',
        message: `must start with spec.clusterIP (${JSON.stringify(spec.clusterIP)})`,
        path: ['clusterIPs', 0],
      });
    }
    const names = new Set<string>();
    const ports = new Set<string>();
    spec.ports.forEach((p, i) => {
      const name = p.name ?? '';
      if (spec.ports.length > 1 && name === '') {
        ctx.addIssue({
          code: 'custom',
          message: 'required when a Service has more than one port',
          path: ['ports', i, 'name'],
        });
      } else if (name !== '' && names.has(name)) {
        ctx.addIssue({
          code: 'custom',
          message: `duplicate port name`,
          path: ['ports', i, 'name'],
        });
      }
      names.add(name);
      const id = `${p.port}/${p.protocol}`;
      if (ports.has(id)) {
        ctx.addIssue({
          code: 'custom',
          message: `duplicate port ${id}`,
          path: ['ports', i, 'port'],
        });
      }
      ports.add(id);
    });
  });

const serviceSchema: z.ZodType<KindTypes['Service']> = base('Service', DNS1035).extend({
  spec: serviceSpec.prefault({}),
});

const endpoint = z.looseObject({
  addresses: z.array(z.string()).min(1).max(100),
  conditions: z
    .looseObject({
      ready: z.boolean().optional(),
      serving: z.boolean().optional(),
      terminating: z.boolean().optional(),
    })
    .optional(),
  hostname: ruleString(isDns1123Label, DNS1123_LABEL_RULE).optional(),
  nodeName: ruleString(isDns1123Subdomain, DNS1123_SUBDOMAIN_RULE).optional(),
  zone: z.string().optional(),
  targetRef: z
    .looseObject({
      kind: z.string().optional(),
      namespace: z.string().optional(),
      name: z.string().optional(),
      uid: z.string().optional(),
    })
    .optional(),
});

const endpointPort = z.looseObject({
  name: z
    .string()
    .refine((s) => s === '' || isDns1123Label(s), DNS1123_LABEL_RULE)
    .optional(),
  port: port.optional(),
  protocol: protocol.default('TCP'),
  appProtocol: z.string().optional(),
});

const ADDRESS_CHECKS = {
  IPv4: { test: (s: string) => parseIP(s)?.length === 4, rule: 'must be a valid IPv4 address' },
  IPv6: {
    test: (s: string) => parseIP(s)?.length === 16,
    rule: 'must be a valid IPv6 address',
  },
  FQDN: { test: isDns1123Subdomain, rule: DNS1123_SUBDOMAIN_RULE },
} as const;

const endpointSliceSchema: z.ZodType<KindTypes['EndpointSlice']> = base('EndpointSlice', SUBDOMAIN)
  .extend({
    addressType: z.enum(['IPv4', 'IPv6', 'FQDN']),
    endpoints: z.array(endpoint).default([]),
    ports: z.array(endpointPort).default([]),
  })
  .superRefine((slice, ctx) => {
    if ((slice.metadata.labels?.[SERVICE_NAME_LABEL] ?? '') === '') {
      ctx.addIssue({
        code: 'custom',
        message: 'required: the name of the Service this slice belongs to',
        path: ['metadata', 'labels', SERVICE_NAME_LABEL],
      });
    }
    const check = ADDRESS_CHECKS[slice.addressType];
    slice.endpoints.forEach((ep, i) => {
      ep.addresses.forEach((addr, j) => {
        if (!check.test(addr)) {
          ctx.addIssue({
            code: 'custom',
            message: `${check.rule} (addressType ${slice.addressType})`,
            path: ['endpoints', i, 'addresses', j],
          });
        }
      });
    });
  });

const portName = z
  .string()
  .refine(
    isIanaServiceName,
    "must be a port name (at most 15 characters: a-z, 0-9 and '-', with a letter)",
  );

const containerPort = z.looseObject({
  containerPort: port,
  name: portName.optional(),
  protocol: protocol.default('TCP'),
  hostPort: port.optional(),
});

const container = z.looseObject({
  name: ruleString(isDns1123Label, DNS1123_LABEL_RULE),
  image: nonEmpty,
  ports: z.array(containerPort).optional(),
  env: z.array(z.looseObject({ name: nonEmpty, value: z.string().optional() })).optional(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
});

const podSpec = z
  .looseObject({
    containers: z.array(container).min(1),
    nodeName: ruleString(isDns1123Subdomain, DNS1123_SUBDOMAIN_RULE).optional(),
  })
  .superRefine((spec, ctx) => {
    // Port names must be unique per pod: a Service's named targetPort has to resolve to one.
    const containers = new Set<string>();
    const ports = new Set<string>();
    spec.containers.forEach((c, i) => {
      if (containers.has(c.name)) {
        ctx.addIssue({
          code: 'custom',
          message: 'duplicate container name',
          path: ['containers', i, 'name'],
        });
      }
      containers.add(c.name);
      (c.ports ?? []).forEach((p, j) => {
        if (p.name === undefined) return;
        if (ports.has(p.name)) {
          ctx.addIssue({
            code: 'custom',
            message: 'duplicate port name in the pod',
            path: ['containers', i, 'ports', j, 'name'],
          });
        }
        ports.add(p.name);
      });
    });
  });

const podCondition = z.looseObject({
  type: nonEmpty,
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string().optional(),
  message: z.string().optional(),
  lastTransitionTime: z.string().optional(),
});

const podStatus = z.looseObject({
  phase: z.enum(['Pending', 'Running', 'Succeeded', 'Failed', 'Unknown']).optional(),
  podIP: ip.optional(),
  podIPs: z.array(z.looseObject({ ip })).optional(),
  hostIP: ip.optional(),
  reason: z.string().optional(),
  message: z.string().optional(),
  startTime: z.string().optional(),
  conditions: z.array(podCondition).optional(),
});

const podSchema: z.ZodType<KindTypes['Pod']> = base('Pod', SUBDOMAIN).extend({
  spec: podSpec,
  status: podStatus.optional(),
});

const count = z.number().int().min(0);

const deploymentSpec = z
  .looseObject({
    replicas: count.default(1),
    selector: z.looseObject({
      matchLabels: labels.refine(
        (m) => Object.keys(m).length > 0,
        'must not be empty (a Deployment selects its pods by label)',
      ),
    }),
    template: z.looseObject({
      metadata: z.looseObject({ labels: labels.optional(), annotations: annotations.optional() }),
      spec: podSpec,
    }),
  })
  .superRefine((spec, ctx) => {
    const have = spec.template.metadata.labels ?? {};
    for (const [key, value] of Object.entries(spec.selector.matchLabels)) {
      if (have[key] !== value) {
        ctx.addIssue({
          code: 'custom',
          message: `must match spec.selector.matchLabels (missing ${key}=${value})`,
          path: ['template', 'metadata', 'labels'],
        });
        return;
      }
    }
  });

const deploymentStatus = z.looseObject({
  replicas: count.optional(),
  readyReplicas: count.optional(),
  availableReplicas: count.optional(),
  updatedReplicas: count.optional(),
  observedGeneration: count.optional(),
});

const deploymentSchema: z.ZodType<KindTypes['Deployment']> = base('Deployment', SUBDOMAIN).extend({
  spec: deploymentSpec,
  status: deploymentStatus.optional(),
});

// ---- Cilium kinds ----

const ipPair = z.looseObject({ ipv4: ipv4.optional(), ipv6: ipv6.optional() });

const ciliumNodeSchema: z.ZodType<KindTypes['CiliumNode']> = base('CiliumNode', SUBDOMAIN).extend({
  spec: z
    .looseObject({
      addresses: z.array(z.looseObject({ type: nonEmpty, ip })).optional(),
      ipam: z.looseObject({ podCIDRs: z.array(cidr).optional() }).optional(),
      health: ipPair.optional(),
      ingress: ipPair.optional(),
      encryption: z.looseObject({ key: encryptionKey.optional() }).optional(),
      'instance-id': z.string().optional(),
    })
    .prefault({}),
});

const ciliumEndpointSchema: z.ZodType<KindTypes['CiliumEndpoint']> = base(
  'CiliumEndpoint',
  SUBDOMAIN,
).extend({
  status: z
    .looseObject({
      id: z.number().int().min(0).max(65535).optional(),
      identity: z
        .looseObject({
          id: z.number().int().min(0).max(0xffffffff),
          labels: z.array(z.string()).optional(),
        })
        .optional(),
      networking: z
        .looseObject({
          addressing: z.array(ipPair),
          // The node's IP (Cilium's EndpointNetworking.NodeIP), the ipcache HostIP.
          node: ip.optional(),
        })
        .optional(),
      encryption: z.looseObject({ key: encryptionKey.optional() }).optional(),
      'named-ports': z
        .array(z.looseObject({ name: nonEmpty, port, protocol: protocol.optional() }))
        .optional(),
    })
    .prefault({}),
});

const ciliumIdentitySchema: z.ZodType<KindTypes['CiliumIdentity']> = base(
  'CiliumIdentity',
  IDENTITY_ID,
).extend({ 'security-labels': stringMap });

// ---- the table ----

export interface KindInfo<K extends KindName = KindName> {
  /** `CiliumNode`. */
  readonly kind: K;
  /** API group, `''` for the core group. */
  readonly group: string;
  /** Accepted apiVersions; the first is the preferred one. */
  readonly apiVersions: readonly string[];
  /** Plural lowercase resource name, used in keys: `ciliumnodes`. */
  readonly resource: string;
  readonly singular: string;
  readonly shortNames: readonly string[];
  readonly namespaced: boolean;
  readonly schema: z.ZodType<KindTypes[K]>;
}

type KindTable = { readonly [K in KindName]: KindInfo<K> };

function info<K extends KindName>(
  kind: K,
  group: string,
  versions: readonly string[],
  resource: string,
  shortNames: readonly string[],
  namespaced: boolean,
  schema: z.ZodType<KindTypes[K]>,
): KindInfo<K> {
  return {
    kind,
    group,
    apiVersions: versions.map((v) => (group === '' ? v : `${group}/${v}`)),
    resource,
    singular: kind.toLowerCase(),
    shortNames,
    namespaced,
    schema,
  };
}

/** Kinds validated for apiVersion, kind and metadata only, until their consumers need more. */
function light(kind: KindName, name: NameRule): z.ZodType<RegistryObject> {
  return base(kind, name);
}

const MCS = 'multicluster.x-k8s.io';
const MCS_VERSIONS = ['v1alpha1', 'v1beta1'];

const TABLE: KindTable = {
  Namespace: info('Namespace', '', ['v1'], 'namespaces', ['ns'], false, namespaceSchema),
  Service: info('Service', '', ['v1'], 'services', ['svc'], true, serviceSchema),
  EndpointSlice: info(
    'EndpointSlice',
    'discovery.k8s.io',
    ['v1'],
    'endpointslices',
    [],
    true,
    endpointSliceSchema,
  ),
  Pod: info('Pod', '', ['v1'], 'pods', ['po'], true, podSchema),
  Deployment: info('Deployment', 'apps', ['v1'], 'deployments', ['deploy'], true, deploymentSchema),
  CiliumNode: info(
    'CiliumNode',
    'cilium.io',
    ['v2'],
    'ciliumnodes',
    ['cn', 'ciliumn'],
    false,
    ciliumNodeSchema,
  ),
  CiliumEndpoint: info(
    'CiliumEndpoint',
    'cilium.io',
    ['v2'],
    'ciliumendpoints',
    ['cep', 'ciliumep'],
    true,
    ciliumEndpointSchema,
  ),
  CiliumIdentity: info(
    'CiliumIdentity',
    'cilium.io',
    ['v2'],
    'ciliumidentities',
    ['ciliumid'],
    false,
    ciliumIdentitySchema,
  ),
  CiliumNetworkPolicy: info(
    'CiliumNetworkPolicy',
    'cilium.io',
    ['v2'],
    'ciliumnetworkpolicies',
    ['cnp', 'ciliumnp'],
    true,
    light('CiliumNetworkPolicy', SUBDOMAIN),
  ),
  CiliumExternalWorkload: info(
    'CiliumExternalWorkload',
    'cilium.io',
    ['v2'],
    'ciliumexternalworkloads',
    ['cew'],
    false,
    light('CiliumExternalWorkload', SUBDOMAIN),
  ),
  ServiceExport: info(
    'ServiceExport',
    MCS,
    MCS_VERSIONS,
    'serviceexports',
    ['svcex'],
    true,
    light('ServiceExport', DNS1035),
  ),
  ServiceImport: info(
    'ServiceImport',
    MCS,
    MCS_VERSIONS,
    'serviceimports',
    ['svcim'],
    true,
    light('ServiceImport', DNS1035),
  ),
};

/** Every kind, in a stable order (the table's). */
export const KINDS: readonly KindInfo[] = Object.values(TABLE);

/** Name rules per kind, for validation that only needs an object's identity. */
const NAME_RULES: Readonly<Record<KindName, NameRule>> = {
  Namespace: LABEL,
  Service: DNS1035,
  EndpointSlice: SUBDOMAIN,
  Pod: SUBDOMAIN,
  Deployment: SUBDOMAIN,
  CiliumNode: SUBDOMAIN,
  CiliumEndpoint: SUBDOMAIN,
  CiliumIdentity: IDENTITY_ID,
  CiliumNetworkPolicy: SUBDOMAIN,
  CiliumExternalWorkload: SUBDOMAIN,
  ServiceExport: DNS1035,
  ServiceImport: DNS1035,
};

export function isKindName(kind: string): kind is KindName {
  return Object.hasOwn(TABLE, kind);
}

export function kindInfo<K extends KindName>(kind: K): KindInfo<K> {
  return TABLE[kind];
}

/** The kind of a manifest's `kind` field (exact, case-sensitive), or `undefined`. */
export function findKind(kind: string): KindInfo | undefined {
  return isKindName(kind) ? TABLE[kind] : undefined;
}

/**
 * What a user may type for a kind on the command line, kubectl style: the kind, its
 * singular or plural lowercase name, a short name, optionally qualified by the group
 * (`serviceexports.multicluster.x-k8s.io`); case-insensitive.
 */
export function resolveKindName(text: string): KindInfo | undefined {
  const lower = text.toLowerCase();
  for (const k of KINDS) {
    const names = [k.singular, k.resource, ...k.shortNames];
    if (names.includes(lower)) return k;
    if (k.group !== '' && names.some((n) => lower === `${n}.${k.group}`)) return k;
  }
  return undefined;
}

export function knownKindNames(): string {
  return KINDS.map((k) => k.kind).join(', ');
}

// ---- validation ----

export interface ValidateOptions {
  /**
   * Namespace for namespaced objects that name none (default `default`). When set, an
   * object naming another namespace is rejected, as `kubectl apply -n` does.
   */
  readonly namespace?: string | undefined;
  /** Check only apiVersion, kind and metadata (enough to locate an object, e.g. to delete it). */
  readonly identityOnly?: boolean | undefined;
}

export interface ValidationProblem {
  /** Path of the offending field, e.g. `['spec', 'ports', 0, 'port']`; empty for the document. */
  readonly path: readonly PropertyKey[];
  readonly reason: string;
  /** Further problems not described (the first one is reported, to keep errors on one line). */
  readonly more: number;
}

export type ValidationResult =
  | { readonly ok: true; readonly info: KindInfo; readonly object: RegistryObject }
  | { readonly ok: false; readonly problem: ValidationProblem };

/**
 * Validates one object as a user wrote it (or as read back from the store) and returns
 * it with defaults applied. Fields set to `null` count as absent, as in Kubernetes.
 */
export function validateObject(raw: unknown, opts: ValidateOptions = {}): ValidationResult {
  const fail = (path: readonly PropertyKey[], reason: string): ValidationResult => ({
    ok: false,
    problem: { path, reason, more: 0 },
  });
  const doc = stripNulls(raw);
  if (!isRecord(doc)) return fail([], `expected a mapping (object), received ${typeName(doc)}`);
  const kind = doc.kind;
  if (kind === undefined) return fail(['kind'], 'required');
  if (typeof kind !== 'string')
    return fail(['kind'], `expected string, received ${typeName(kind)}`);
  const info = findKind(kind);
  if (info === undefined) {
    return fail(['kind'], `unknown kind ${JSON.stringify(kind)} (known: ${knownKindNames()})`);
  }
  const apiVersion = doc.apiVersion;
  if (apiVersion === undefined) return fail(['apiVersion'], 'required');
  if (typeof apiVersion !== 'string' || !info.apiVersions.includes(apiVersion)) {
    const expected = info.apiVersions.map((v) => JSON.stringify(v)).join(' or ');
    return fail(
      ['apiVersion'],
      `expected ${expected} for kind ${info.kind}, received ${describeValue(apiVersion)}`,
    );
  }
  const meta = doc.metadata;
  if (meta === undefined) return fail(['metadata'], 'required');
  if (!isRecord(meta)) return fail(['metadata'], `expected object, received ${typeName(meta)}`);
  const metaOut: Record<string, unknown> = { ...meta };
  if (info.namespaced) {
    const ns = meta.namespace;
    if (ns === undefined || ns === '') {
      metaOut.namespace = opts.namespace ?? 'default';
    } else if (opts.namespace !== undefined && ns !== opts.namespace) {
      return fail(
        ['metadata', 'namespace'],
        `${describeValue(ns)} does not match the namespace ${JSON.stringify(opts.namespace)} given on the command line`,
      );
    }
  } else {
    // Kubernetes ignores a namespace on cluster-scoped objects; so do we.
    delete metaOut.namespace;
  }
  const input = { ...doc, metadata: metaOut };
  const schema = opts.identityOnly === true ? base(info.kind, NAME_RULES[info.kind]) : info.schema;
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const [first] = parsed.error.issues;
    if (first === undefined) return fail([], 'invalid');
    return {
      ok: false,
      problem: {
        path: first.path,
        reason: issueReason(first, input),
        more: parsed.error.issues.length - 1,
      },
    };
  }
  return { ok: true, info, object: parsed.data };
}

/**
 * Like {@link validateObject}, throwing ClusterMeshError(InvalidArgument) with a one-line
 * message such as `Service default/x: spec.ports[0].port: must be <= 65535`.
 */
export function parseObject(
  raw: unknown,
  opts: ValidateOptions = {},
): { info: KindInfo; object: RegistryObject } {
  const r = validateObject(raw, opts);
  if (r.ok) return { info: r.info, object: r.object };
  const what = describeRaw(raw, opts.namespace);
  throw new ClusterMeshError(
    ErrorCode.InvalidArgument,
    `${what === '' ? 'object' : what}: ${formatProblem(r.problem)}`,
  );
}

/** `spec.ports[0].port: expected number, received string`, plus a count of further problems. */
export function formatProblem(p: ValidationProblem): string {
  const path = formatPath(p.path);
  const more = p.more > 0 ? ` (and ${p.more} more problem${p.more === 1 ? '' : 's'})` : '';
  return `${path === '' ? '' : `${path}: `}${p.reason}${more}`;
}

/** `spec.ports[0].port`, `metadata.labels["kubernetes.io/service-name"]`. */
export function formatPath(path: readonly PropertyKey[]): string {
  let out = '';
  for (const seg of path) {
    if (typeof seg === 'number') out += `[${seg}]`;
    else if (typeof seg === 'string' && /^[A-Za-z_$][\w$-]*$/.test(seg)) {
      out += out === '' ? seg : `.${seg}`;
    } else out += `[${JSON.stringify(String(seg))}]`;
  }
  return out;
}

/**
 * `Service default/rebel-base` for whatever part of an object's identity can be read from
 * its raw form (possibly invalid); `''` when nothing can.
 */
export function describeRaw(raw: unknown, defaultNamespace?: string): string {
  if (!isRecord(raw)) return '';
  const kind = typeof raw.kind === 'string' ? raw.kind : '';
  const meta = isRecord(raw.metadata) ? raw.metadata : {};
  const name = typeof meta.name === 'string' ? meta.name : '';
  let ns = typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : '';
  const info = findKind(kind);
  if (info !== undefined && !info.namespaced) ns = '';
  else if (info?.namespaced === true && ns === '') ns = defaultNamespace ?? 'default';
  const id = name === '' ? '' : ns === '' ? name : `${ns}/${name}`;
  return [kind, id].filter((s) => s !== '').join(' ');
}

function issueReason(issue: z.core.$ZodIssue, input: unknown): string {
  const value = valueAt(input, issue.path);
  switch (issue.code) {
    case 'invalid_type':
      if (value === undefined) return 'required';
      return `expected ${issue.expected}, received ${typeName(value)}`;
    case 'too_small':
    case 'too_big': {
      const small = issue.code === 'too_small';
      const bound = small ? issue.minimum : issue.maximum;
      const inclusive = issue.inclusive !== false;
      if (issue.origin === 'number' || issue.origin === 'int' || issue.origin === 'bigint') {
        const op = small ? (inclusive ? '>=' : '>') : inclusive ? '<=' : '<';
        return `must be ${op} ${String(bound)}, received ${describeValue(value)}`;
      }
      const unit =
        issue.origin === 'string' ? 'character' : issue.origin === 'array' ? 'item' : 'entry';
      if (small && Number(bound) === 1) return 'must not be empty';
      return `must have ${small ? 'at least' : 'at most'} ${String(bound)} ${unit}${Number(bound) === 1 ? '' : 's'}`;
    }
    case 'invalid_value':
      return `expected one of ${issue.values.map((v) => JSON.stringify(v)).join(', ')}, received ${describeValue(value)}`;
    case 'custom':
      return isShortScalar(value) && value !== '' && !issue.message.includes(JSON.stringify(value))
        ? `${issue.message}, received ${describeValue(value)}`
        : issue.message;
    default:
      return issue.message.replace(/^Invalid (?:input|option): /, '');
  }
}

function valueAt(root: unknown, path: readonly PropertyKey[]): unknown {
  let v: unknown = root;
  for (const seg of path) {
    if (Array.isArray(v) && typeof seg === 'number') v = v[seg];
    else if (isRecord(v) && typeof seg === 'string') v = v[seg];
    else return undefined;
  }
  return v;
}

function isShortScalar(v: unknown): v is string | number | boolean {
  return (
    typeof v === 'number' || typeof v === 'boolean' || (typeof v === 'string' && v.length <= 80)
  );
}

function describeValue(v: unknown): string {
  return isShortScalar(v) ? JSON.stringify(v) : typeName(v);
}

function typeName(v: unknown): string {
  if (v === null) return 'null';
  if (Array.isArray(v)) return 'array';
  return typeof v === 'object' ? 'object' : typeof v;
}

export function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v);
}

/** Drops object fields whose value is null, recursively (arrays keep their elements). */
function stripNulls(v: unknown): unknown {
  if (Array.isArray(v)) return v.map(stripNulls);
  if (!isRecord(v)) return v;
  const out: Record<string, unknown> = {};
  for (const [k, x] of Object.entries(v)) if (x !== null) out[k] = stripNulls(x);
  return out;
}
