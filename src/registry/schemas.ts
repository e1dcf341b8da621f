import { z } from 'zod';
import { ipFamily, parseCIDR, parseIP } from '../keyspace/index.js';
import {
  NameRules,
  isIanaServiceName,
  labelValueProblem,
  qualifiedNameProblem,
  type NameRule,
} from './names.js';
import { SERVICE_NAME_LABEL, type KindName, type KindTypes } from './objects.js';
import type { RegistryObject } from './types.js';

/**
 * The schemas of the kinds the registry stores. They check the fields consumers read
 * (names, IPs, CIDRs, ports, enums) precisely and keep every other field as written,
 * because real manifests carry many Kubernetes fields that local mode does not use.
 * Defaults applied here (protocol TCP, Service type ClusterIP, empty lists) are stored,
 * so consumers never re-default and re-applying a manifest is a no-op.
 *
 * A kind's schema extends its identity schema (apiVersion, kind, metadata), which
 * src/registry/kinds.ts builds from the kind's name rule.
 *
 * The network policy kinds are the exception and live in policy-schemas.ts: they are
 * strict, because an ignored policy field would let through traffic the user denied.
 */

// ---- field schemas ----

const nonEmpty = z.string().min(1, 'must not be empty');

/** One problem per name: empty, or breaking the rule. */
function nameString({ test, rule }: NameRule) {
  return z.string().superRefine((s, ctx) => {
    if (s === '') ctx.addIssue({ code: 'custom', message: 'must not be empty' });
    else if (!test(s)) ctx.addIssue({ code: 'custom', message: rule });
  });
}

/** A port's name: optional, and may be empty when it is the only port. */
const portName = z
  .string()
  .refine((s) => s === '' || NameRules.dns1123Label.test(s), NameRules.dns1123Label.rule)
  .optional();

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
    name: nameString(name),
    namespace: nameString(NameRules.dns1123Label).optional(),
    uid: z.string().optional(),
    resourceVersion: z.string().optional(),
    creationTimestamp: z.string().optional(),
    generation: z.number().int().min(0).optional(),
    labels: labels.optional(),
    annotations: annotations.optional(),
    ownerReferences: z.array(ownerReference).optional(),
  });
}

/** What locates an object: apiVersion, kind and metadata (with its name following `name`). */
export function identitySchema<K extends KindName>(kind: K, name: NameRule) {
  return z.looseObject({ apiVersion: z.string(), kind: z.literal(kind), metadata: metadata(name) });
}

/** The identity schema of kind K, which its full schema extends. */
export type IdentitySchema<K extends KindName> = ReturnType<typeof identitySchema<K>>;

/** Kinds validated for their identity only, until their consumers need more. */
export function identityOnly(identity: z.ZodType<RegistryObject>): z.ZodType<RegistryObject> {
  return identity;
}

// ---- Kubernetes kinds ----

export const namespaceSchema = (
  identity: IdentitySchema<'Namespace'>,
): z.ZodType<KindTypes['Namespace']> => identity;

const clusterIP = z
  .string()
  .refine(
    (s) => s === '' || s === 'None' || parseIP(s) !== null,
    'must be an IP address, "None" (headless) or empty',
  );

/** A port number (1-65535) or an IANA service name, as Kubernetes ports are written. */
export const portNumberOrName = z.union([z.number(), z.string()]).superRefine((v, ctx) => {
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
  name: portName,
  port,
  targetPort: portNumberOrName.optional(),
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

export const serviceSchema = (
  identity: IdentitySchema<'Service'>,
): z.ZodType<KindTypes['Service']> => identity.extend({ spec: serviceSpec.prefault({}) });

const endpoint = z.looseObject({
  addresses: z.array(z.string()).min(1).max(100),
  conditions: z
    .looseObject({
      ready: z.boolean().optional(),
      serving: z.boolean().optional(),
      terminating: z.boolean().optional(),
    })
    .optional(),
  hostname: nameString(NameRules.dns1123Label).optional(),
  nodeName: nameString(NameRules.dns1123Subdomain).optional(),
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
  name: portName,
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
  FQDN: NameRules.dns1123Subdomain,
} as const;

export const endpointSliceSchema = (
  identity: IdentitySchema<'EndpointSlice'>,
): z.ZodType<KindTypes['EndpointSlice']> =>
  identity
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

const containerPortName = z
  .string()
  .refine(
    isIanaServiceName,
    "must be a port name (at most 15 characters: a-z, 0-9 and '-', with a letter)",
  );

const containerPort = z.looseObject({
  containerPort: port,
  name: containerPortName.optional(),
  protocol: protocol.default('TCP'),
  hostPort: port.optional(),
});

const container = z.looseObject({
  name: nameString(NameRules.dns1123Label),
  image: nonEmpty,
  ports: z.array(containerPort).optional(),
  env: z.array(z.looseObject({ name: nonEmpty, value: z.string().optional() })).optional(),
  command: z.array(z.string()).optional(),
  args: z.array(z.string()).optional(),
});

const podSpec = z
  .looseObject({
    containers: z.array(container).min(1),
    nodeName: nameString(NameRules.dns1123Subdomain).optional(),
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

export const podSchema = (identity: IdentitySchema<'Pod'>): z.ZodType<KindTypes['Pod']> =>
  identity.extend({ spec: podSpec, status: podStatus.optional() });

const count = z.number().int().min(0);

/** The selector and pod template a Deployment and a DaemonSet share. */
function selectorAndTemplate(kind: string) {
  return {
    selector: z.looseObject({
      matchLabels: labels.refine(
        (m) => Object.keys(m).length > 0,
        `must not be empty (a ${kind} selects its pods by label)`,
      ),
    }),
    template: z.looseObject({
      metadata: z.looseObject({ labels: labels.optional(), annotations: annotations.optional() }),
      spec: podSpec,
    }),
  };
}

/** The template's labels must carry every label the selector selects by. */
function templateCarriesSelector(
  spec: {
    selector: { matchLabels: Record<string, string> };
    template: { metadata: { labels?: Record<string, string> | undefined } };
  },
  ctx: z.RefinementCtx,
): void {
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
}

const deploymentSpec = z
  .looseObject({ replicas: count.default(1), ...selectorAndTemplate('Deployment') })
  .superRefine(templateCarriesSelector);

const deploymentStatus = z.looseObject({
  replicas: count.optional(),
  readyReplicas: count.optional(),
  availableReplicas: count.optional(),
  updatedReplicas: count.optional(),
  observedGeneration: count.optional(),
});

export const deploymentSchema = (
  identity: IdentitySchema<'Deployment'>,
): z.ZodType<KindTypes['Deployment']> =>
  identity.extend({ spec: deploymentSpec, status: deploymentStatus.optional() });

/** ConfigMap keys: what a file name in a mounted volume may be, as Kubernetes checks them. */
const configMapKey = /^[-._a-zA-Z0-9]+$/;

const configMapData = stringMap.superRefine((map, ctx) => {
  for (const key of Object.keys(map)) {
    if (key.length > 253 || !configMapKey.test(key)) {
      ctx.addIssue({
        code: 'custom',
        message: "a valid config key must consist of alphanumeric characters, '-', '_' or '.'",
        path: [key],
      });
    }
  }
});

export const configMapSchema = (
  identity: IdentitySchema<'ConfigMap'>,
): z.ZodType<KindTypes['ConfigMap']> =>
  identity.extend({
    data: configMapData.optional(),
    binaryData: configMapData.optional(),
    immutable: z.boolean().optional(),
  });

// ---- Kubernetes kinds a deployment of the daemons needs (the Helm chart's) ----

const daemonSetSpec = z
  .looseObject(selectorAndTemplate('DaemonSet'))
  .superRefine(templateCarriesSelector);

export const daemonSetSchema = (
  identity: IdentitySchema<'DaemonSet'>,
): z.ZodType<KindTypes['DaemonSet']> =>
  identity.extend({ spec: daemonSetSpec, status: z.looseObject({}).optional() });

export const serviceAccountSchema = (
  identity: IdentitySchema<'ServiceAccount'>,
): z.ZodType<KindTypes['ServiceAccount']> =>
  identity.extend({ automountServiceAccountToken: z.boolean().optional() });

const base64 = z
  .string()
  .refine((s) => /^[A-Za-z0-9+/]*={0,2}$/.test(s) && s.length % 4 === 0, 'illegal base64 data');

export const secretSchema = (identity: IdentitySchema<'Secret'>): z.ZodType<KindTypes['Secret']> =>
  identity.extend({
    type: z.string().optional(),
    data: z.record(z.string(), base64).optional(),
    stringData: stringMap.optional(),
    immutable: z.boolean().optional(),
  });

/** RBAC rules, checked as the Kubernetes API server checks them. */
const policyRule = z
  .looseObject({
    verbs: z.array(nonEmpty).min(1, 'verbs must contain at least one value'),
    apiGroups: z.array(z.string()).optional(),
    resources: z.array(nonEmpty).optional(),
    resourceNames: z.array(nonEmpty).optional(),
    nonResourceURLs: z.array(nonEmpty).optional(),
  })
  .superRefine((r, ctx) => {
    const urls = (r.nonResourceURLs ?? []).length > 0;
    const res = (r.resources ?? []).length > 0;
    if (!urls && !res) {
      ctx.addIssue({
        code: 'custom',
        message: 'resource rules must supply at least one api group',
      });
    } else if (res && r.apiGroups === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'resource rules must supply at least one api group',
        path: ['apiGroups'],
      });
    }
  });

const roleRef = z.looseObject({
  apiGroup: z.literal('rbac.authorization.k8s.io'),
  kind: z.enum(['Role', 'ClusterRole']),
  name: nonEmpty,
});

const subject = z.looseObject({
  kind: z.enum(['ServiceAccount', 'User', 'Group']),
  name: nonEmpty,
  namespace: z.string().optional(),
  apiGroup: z.string().optional(),
});

export const roleSchema = (identity: IdentitySchema<'Role'>): z.ZodType<KindTypes['Role']> =>
  identity.extend({ rules: z.array(policyRule).default([]) });

export const clusterRoleSchema = (
  identity: IdentitySchema<'ClusterRole'>,
): z.ZodType<KindTypes['ClusterRole']> =>
  identity.extend({ rules: z.array(policyRule).default([]) });

export const roleBindingSchema = (
  identity: IdentitySchema<'RoleBinding'>,
): z.ZodType<KindTypes['RoleBinding']> =>
  identity.extend({ roleRef, subjects: z.array(subject).default([]) });

export const clusterRoleBindingSchema = (
  identity: IdentitySchema<'ClusterRoleBinding'>,
): z.ZodType<KindTypes['ClusterRoleBinding']> =>
  identity.extend({
    roleRef: roleRef.refine(
      (r) => r.kind === 'ClusterRole',
      'a ClusterRoleBinding may only reference a ClusterRole',
    ),
    subjects: z
      .array(subject)
      .default([])
      .superRefine((subjects, ctx) => {
        subjects.forEach((s, i) => {
          if (s.kind === 'ServiceAccount' && (s.namespace ?? '') === '') {
            ctx.addIssue({ code: 'custom', message: 'namespace: Required value', path: [i] });
          }
        });
      }),
  });

// ---- Cilium kinds ----

const ipPair = z.looseObject({ ipv4: ipv4.optional(), ipv6: ipv6.optional() });
const encryption = z.looseObject({ key: encryptionKey.optional() });

export const ciliumNodeSchema = (
  identity: IdentitySchema<'CiliumNode'>,
): z.ZodType<KindTypes['CiliumNode']> =>
  identity.extend({
    spec: z
      .looseObject({
        addresses: z.array(z.looseObject({ type: nonEmpty, ip })).optional(),
        ipam: z.looseObject({ podCIDRs: z.array(cidr).optional() }).optional(),
        health: ipPair.optional(),
        ingress: ipPair.optional(),
        encryption: encryption.optional(),
        'instance-id': z.string().optional(),
      })
      .prefault({}),
  });

export const ciliumEndpointSchema = (
  identity: IdentitySchema<'CiliumEndpoint'>,
): z.ZodType<KindTypes['CiliumEndpoint']> =>
  identity.extend({
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
        encryption: encryption.optional(),
        'named-ports': z
          .array(z.looseObject({ name: nonEmpty, port, protocol: protocol.optional() }))
          .optional(),
      })
      .prefault({}),
  });

export const ciliumIdentitySchema = (
  identity: IdentitySchema<'CiliumIdentity'>,
): z.ZodType<KindTypes['CiliumIdentity']> => identity.extend({ 'security-labels': stringMap });

// ---- MCS-API kinds (KEP-1645, multicluster.x-k8s.io v1beta1; v1alpha1 is field-identical) ----

const condition = z.looseObject({
  type: nonEmpty,
  status: z.enum(['True', 'False', 'Unknown']),
  reason: z.string(),
  message: z.string(),
  lastTransitionTime: z.string(),
  observedGeneration: count.optional(),
});

/** `status.conditions` is a list-map keyed by `type`, as in the CRD. */
const conditions = z.array(condition).superRefine((list, ctx) => {
  const seen = new Set<string>();
  list.forEach((c, i) => {
    if (seen.has(c.type)) {
      ctx.addIssue({ code: 'custom', message: 'duplicate condition type', path: [i, 'type'] });
    }
    seen.add(c.type);
  });
});

const sessionAffinityConfig = z.looseObject({
  clientIP: z
    .looseObject({ timeoutSeconds: z.number().int().min(1).max(86400).optional() })
    .optional(),
});

export const serviceExportSchema = (
  identity: IdentitySchema<'ServiceExport'>,
): z.ZodType<KindTypes['ServiceExport']> =>
  identity.extend({
    spec: z
      .looseObject({
        exportedLabels: labels.optional(),
        exportedAnnotations: annotations.optional(),
      })
      .optional(),
    status: z.looseObject({ conditions: conditions.optional() }).optional(),
  });

const mcsPort = z.looseObject({
  name: portName,
  protocol: protocol.default('TCP'),
  appProtocol: z.string().optional(),
  port,
});

const ipFamilyName = z.enum(['IPv4', 'IPv6']);

export const serviceImportSchema = (
  identity: IdentitySchema<'ServiceImport'>,
): z.ZodType<KindTypes['ServiceImport']> =>
  identity.extend({
    spec: z.looseObject({
      ports: z.array(mcsPort),
      ips: z.array(ip).max(2).optional(),
      type: z.enum(['ClusterSetIP', 'Headless']),
      sessionAffinity: z.enum(['None', 'ClientIP']).optional(),
      sessionAffinityConfig: sessionAffinityConfig.optional(),
      ipFamilies: z
        .array(ipFamilyName)
        .max(2)
        .refine((f) => new Set(f).size === f.length, 'must not repeat a family')
        .optional(),
      internalTrafficPolicy: z.enum(['Cluster', 'Local']).optional(),
      trafficDistribution: z.string().optional(),
    }),
    status: z
      .looseObject({
        clusters: z.array(z.looseObject({ cluster: nonEmpty })).optional(),
        conditions: conditions.optional(),
      })
      .optional(),
  });
