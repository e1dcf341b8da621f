import { z } from 'zod';
import { parseCIDR, parseIP, type ParsedCIDR } from '../keyspace/index.js';
import { isIanaServiceName, labelValueProblem, qualifiedNameProblem } from './names.js';
import type { KindTypes } from './objects.js';
import { portNumberOrName, type IdentitySchema } from './schemas.js';

/**
 * The schemas of the three network policy kinds: CiliumNetworkPolicy,
 * CiliumClusterwideNetworkPolicy (cilium.io/v2) and NetworkPolicy (networking.k8s.io/v1).
 *
 * Unlike the other kinds, every object here is strict: a policy field the engine does not
 * read would be silently ignored, so traffic the user meant to deny could pass. Unknown
 * fields are therefore errors, and real API fields the engine does not enforce (L7 rules,
 * FQDNs, services, ICMP, …) are refused with a message naming them.
 */

// ---- shared pieces ----

const nonEmpty = z.string().min(1, 'must not be empty');

/**
 * A field of the real API that is not enforced: accepted by no value, so a manifest using
 * it is refused instead of being stored and then ignored.
 */
function unsupported(field: string, why = 'only L3/L4 policy is enforced') {
  return z.custom<never>(() => false, { message: `${field} is not supported (${why})` }).optional();
}

function bitsEqual(a: Uint8Array, b: Uint8Array, prefixLen: number): boolean {
  for (let i = 0; i < prefixLen; i++) {
    const byte = i >> 3;
    const mask = 0x80 >> (i & 7);
    if (((a[byte] ?? 0) & mask) !== ((b[byte] ?? 0) & mask)) return false;
  }
  return true;
}

/** `inner` lies inside `outer` (same family, at least as long a prefix, same leading bits). */
function cidrInside(inner: ParsedCIDR, outer: ParsedCIDR, strict: boolean): boolean {
  if (inner.bits !== outer.bits) return false;
  if (strict ? inner.prefixLen <= outer.prefixLen : inner.prefixLen < outer.prefixLen) return false;
  return bitsEqual(inner.ip, outer.ip, outer.prefixLen);
}

/** A CIDR, or (Cilium only) a bare IP meaning a /32 or /128. */
function parsePrefix(s: string, bareIP: boolean): ParsedCIDR | null {
  const c = parseCIDR(s);
  if (c !== null || !bareIP) return c;
  const ip = parseIP(s);
  return ip === null ? null : { ip, prefixLen: ip.length * 8, bits: ip.length * 8 };
}

const ciliumCIDR = z
  .string()
  .refine(
    (s) => parsePrefix(s, true) !== null,
    'must be a valid CIDR (address/prefix-length) or IP address',
  );

const kubeCIDR = z
  .string()
  .refine((s) => parseCIDR(s) !== null, 'must be a valid CIDR (address/prefix-length)');

type SelectorFlavor = 'cilium' | 'kubernetes';

/**
 * A label selector. Cilium's keys may carry a source prefix (`k8s:app`, `reserved:host`),
 * so only Kubernetes selectors check keys as qualified names; values follow the label
 * value rules in both.
 */
function labelSelector(flavor: SelectorFlavor) {
  const key =
    flavor === 'kubernetes'
      ? z.string().superRefine((k, ctx) => {
          const problem = qualifiedNameProblem(k);
          if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
        })
      : nonEmpty;
  const matchLabels = z.record(z.string(), z.string()).superRefine((map, ctx) => {
    for (const [k, v] of Object.entries(map)) {
      const problem =
        (flavor === 'kubernetes'
          ? qualifiedNameProblem(k)
          : k === ''
            ? 'key must not be empty'
            : null) ?? labelValueProblem(v);
      if (problem !== null) ctx.addIssue({ code: 'custom', message: problem, path: [k] });
    }
  });
  const requirement = z
    .strictObject({
      key,
      operator: z.enum(['In', 'NotIn', 'Exists', 'DoesNotExist']),
      values: z
        .array(
          z.string().superRefine((v, ctx) => {
            const problem = labelValueProblem(v);
            if (problem !== null) ctx.addIssue({ code: 'custom', message: problem });
          }),
        )
        .optional(),
    })
    .superRefine((r, ctx) => {
      const n = r.values?.length ?? 0;
      if ((r.operator === 'In' || r.operator === 'NotIn') && n === 0) {
        ctx.addIssue({
          code: 'custom',
          message: `must not be empty when operator is ${r.operator}`,
          path: ['values'],
        });
      } else if ((r.operator === 'Exists' || r.operator === 'DoesNotExist') && n > 0) {
        ctx.addIssue({
          code: 'custom',
          message: `must not be set when operator is ${r.operator}`,
          path: ['values'],
        });
      }
    });
  return z.strictObject({
    matchLabels: matchLabels.optional(),
    matchExpressions: z.array(requirement).optional(),
  });
}

// ---- CiliumNetworkPolicy / CiliumClusterwideNetworkPolicy rules ----

const ciliumSelector = labelSelector('cilium');

/**
 * Cilium's entities (its entity mapping, which also has world-ipv4 and world-ipv6), plus
 * `cluster-mesh`: every endpoint of every meshed cluster.
 */
export const ENTITIES = [
  'host',
  'remote-node',
  'cluster',
  'world',
  'world-ipv4',
  'world-ipv6',
  'all',
  'health',
  'kube-apiserver',
  'cluster-mesh',
  'init',
  'ingress',
  'unmanaged',
  'none',
] as const;

const entity = z.enum(ENTITIES);

const cidrRule = z
  .strictObject({
    cidr: ciliumCIDR,
    except: z.array(ciliumCIDR).optional(),
    cidrGroupRef: unsupported('cidrGroupRef', 'CiliumCIDRGroups are not implemented'),
    cidrGroupSelector: unsupported('cidrGroupSelector', 'CiliumCIDRGroups are not implemented'),
  })
  .superRefine((rule, ctx) => {
    const outer = parsePrefix(rule.cidr, true);
    if (outer === null) return;
    (rule.except ?? []).forEach((e, i) => {
      const inner = parsePrefix(e, true);
      if (inner !== null && !cidrInside(inner, outer, false)) {
        ctx.addIssue({
          code: 'custom',
          message: `must lie inside cidr ${rule.cidr}`,
          path: ['except', i],
        });
      }
    });
  });

/** Cilium's L4 protocols (its API spells ICMPv6 `ICMPV6`). */
export const L4_PROTOCOLS = ['TCP', 'UDP', 'SCTP', 'ICMP', 'ICMPV6', 'ANY'] as const;

const NAMED_PORT_RULE =
  "must be a port number (0-65535) or a port name (at most 15 characters: a-z, 0-9 and '-', with a letter)";

/** A decimal port number, the form Cilium's `port` strings take besides names. */
function numericPort(s: string): number | null {
  return /^(?:0|[1-9]\d{0,4})$/.test(s) && Number(s) <= 65535 ? Number(s) : null;
}

const portProtocol = z
  .strictObject({
    port: z
      .string()
      .refine((s) => numericPort(s) !== null || isIanaServiceName(s), NAMED_PORT_RULE),
    endPort: z.number().int().min(0).max(65535).optional(),
    protocol: z.enum(L4_PROTOCOLS).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.endPort === undefined) return;
    const start = numericPort(p.port);
    if (start === null) {
      ctx.addIssue({
        code: 'custom',
        message: 'requires a numeric port (a range cannot start at a named port)',
        path: ['endPort'],
      });
    } else if (p.endPort < start) {
      ctx.addIssue({
        code: 'custom',
        message: `must be >= port (${start})`,
        path: ['endPort'],
      });
    }
  });

const L7 = 'L7 rules are not supported (only L3/L4 policy is enforced)';

const portRule = z.strictObject({
  ports: z.array(portProtocol).max(40).optional(),
  rules: z.custom<never>(() => false, { message: L7 }).optional(),
  terminatingTLS: unsupported('terminatingTLS', L7),
  originatingTLS: unsupported('originatingTLS', L7),
  serverNames: unsupported('serverNames', L7),
  listener: unsupported('listener', L7),
});

/** Peer fields that may not share one rule: Cilium refuses the combination. */
function exclusivePeers(
  rule: Record<string, unknown>,
  pairs: readonly (readonly [string, string])[],
  ctx: z.core.$RefinementCtx,
): void {
  const present = (f: string): boolean =>
    Array.isArray(rule[f]) && (rule[f] as unknown[]).length > 0;
  for (const [a, b] of pairs) {
    if (present(a) && present(b)) {
      ctx.addIssue({
        code: 'custom',
        message: `combining ${a} and ${b} is not supported yet; write them as separate rules`,
        path: [b],
      });
      return;
    }
  }
}

const INGRESS_EXCLUSIVE = [
  ['fromEndpoints', 'fromCIDR'],
  ['fromEndpoints', 'fromCIDRSet'],
  ['fromEndpoints', 'fromEntities'],
] as const;

const EGRESS_EXCLUSIVE = [
  ['toEndpoints', 'toCIDR'],
  ['toEndpoints', 'toCIDRSet'],
  ['toEndpoints', 'toEntities'],
  ['toCIDR', 'toCIDRSet'],
] as const;

const ingressRule = z
  .strictObject({
    fromEndpoints: z.array(ciliumSelector).optional(),
    fromEntities: z.array(entity).optional(),
    fromCIDR: z.array(ciliumCIDR).optional(),
    fromCIDRSet: z.array(cidrRule).optional(),
    toPorts: z.array(portRule).optional(),
    fromRequires: unsupported('fromRequires', 'removed from Cilium in 1.19'),
    fromNodes: unsupported('fromNodes'),
    fromGroups: unsupported('fromGroups'),
    icmps: unsupported('icmps'),
    authentication: unsupported('authentication'),
  })
  .superRefine((r, ctx) => {
    exclusivePeers(r, INGRESS_EXCLUSIVE, ctx);
  });

const egressRule = z
  .strictObject({
    toEndpoints: z.array(ciliumSelector).optional(),
    toEntities: z.array(entity).optional(),
    toCIDR: z.array(ciliumCIDR).optional(),
    toCIDRSet: z.array(cidrRule).optional(),
    toPorts: z.array(portRule).optional(),
    toRequires: unsupported('toRequires', 'removed from Cilium in 1.19'),
    toNodes: unsupported('toNodes'),
    toGroups: unsupported('toGroups'),
    toServices: unsupported('toServices'),
    toFQDNs: unsupported('toFQDNs'),
    icmps: unsupported('icmps'),
    authentication: unsupported('authentication'),
  })
  .superRefine((r, ctx) => {
    exclusivePeers(r, EGRESS_EXCLUSIVE, ctx);
  });

const ruleLabel = z.strictObject({
  key: nonEmpty,
  value: z.string().optional(),
  source: z.string().optional(),
});

function ruleSchema(clusterwide: boolean) {
  return z
    .strictObject({
      endpointSelector: ciliumSelector.optional(),
      nodeSelector: clusterwide
        ? ciliumSelector.optional()
        : z
            .custom<never>(() => false, {
              message:
                'only a CiliumClusterwideNetworkPolicy may select nodes; use endpointSelector',
            })
            .optional(),
      ingress: z.array(ingressRule).optional(),
      ingressDeny: z.array(ingressRule).optional(),
      egress: z.array(egressRule).optional(),
      egressDeny: z.array(egressRule).optional(),
      enableDefaultDeny: z
        .strictObject({ ingress: z.boolean().optional(), egress: z.boolean().optional() })
        .optional(),
      description: z.string().optional(),
      labels: z.array(ruleLabel).optional(),
      log: unsupported('log', 'policy verdict logging is not implemented'),
    })
    .superRefine((rule, ctx) => {
      const subjects = [rule.endpointSelector, rule.nodeSelector].filter((s) => s !== undefined);
      if (subjects.length === 0) {
        ctx.addIssue({
          code: 'custom',
          message: clusterwide
            ? 'required: a rule selects its subjects with endpointSelector or nodeSelector'
            : 'required: a rule selects its subjects with endpointSelector',
          path: ['endpointSelector'],
        });
      } else if (subjects.length > 1) {
        ctx.addIssue({
          code: 'custom',
          message: 'endpointSelector and nodeSelector are mutually exclusive',
          path: ['nodeSelector'],
        });
      }
    });
}

const namespacedRule = ruleSchema(false);
const clusterwideRule = ruleSchema(true);

const policyStatus = z.looseObject({
  conditions: z.array(z.looseObject({ type: z.string(), status: z.string() })).optional(),
});

// Written by the agents that import a policy (its Valid condition), never by users.
const policyStatusField = policyStatus.optional();

function requireRules(
  policy: { readonly spec?: unknown; readonly specs?: readonly unknown[] | undefined },
  ctx: z.core.$RefinementCtx,
): void {
  if (policy.spec === undefined && (policy.specs ?? []).length === 0) {
    ctx.addIssue({
      code: 'custom',
      message: 'required: a rule in spec, or a list of rules in specs',
      path: ['spec'],
    });
  }
}

export const ciliumNetworkPolicySchema = (
  identity: IdentitySchema<'CiliumNetworkPolicy'>,
): z.ZodType<KindTypes['CiliumNetworkPolicy']> =>
  identity
    .extend({
      spec: namespacedRule.optional(),
      specs: z.array(namespacedRule).optional(),
      status: policyStatusField,
    })
    .strict()
    .superRefine(requireRules);

export const ciliumClusterwideNetworkPolicySchema = (
  identity: IdentitySchema<'CiliumClusterwideNetworkPolicy'>,
): z.ZodType<KindTypes['CiliumClusterwideNetworkPolicy']> =>
  identity
    .extend({
      spec: clusterwideRule.optional(),
      specs: z.array(clusterwideRule).optional(),
      status: policyStatusField,
    })
    .strict()
    .superRefine(requireRules);

// ---- NetworkPolicy (as the Kubernetes API server validates it) ----

const kubeSelector = labelSelector('kubernetes');

const ipBlock = z
  .strictObject({ cidr: kubeCIDR, except: z.array(kubeCIDR).optional() })
  .superRefine((block, ctx) => {
    const outer = parseCIDR(block.cidr);
    if (outer === null) return;
    (block.except ?? []).forEach((e, i) => {
      const inner = parseCIDR(e);
      if (inner !== null && !cidrInside(inner, outer, true)) {
        ctx.addIssue({
          code: 'custom',
          message: `must be a strict subset of cidr ${block.cidr}`,
          path: ['except', i],
        });
      }
    });
  });

const peer = z
  .strictObject({
    podSelector: kubeSelector.optional(),
    namespaceSelector: kubeSelector.optional(),
    ipBlock: ipBlock.optional(),
  })
  .superRefine((p, ctx) => {
    const selectors = p.podSelector !== undefined || p.namespaceSelector !== undefined;
    if (p.ipBlock !== undefined && selectors) {
      ctx.addIssue({
        code: 'custom',
        message: 'may not be combined with podSelector or namespaceSelector',
        path: ['ipBlock'],
      });
    } else if (p.ipBlock === undefined && !selectors) {
      ctx.addIssue({
        code: 'custom',
        message: 'must specify a peer: podSelector, namespaceSelector or ipBlock',
      });
    }
  });

const networkPolicyPort = z
  .strictObject({
    protocol: z.enum(['TCP', 'UDP', 'SCTP']).default('TCP'),
    port: portNumberOrName.optional(),
    endPort: z.number().int().min(1).max(65535).optional(),
  })
  .superRefine((p, ctx) => {
    if (p.endPort === undefined) return;
    if (p.port === undefined) {
      ctx.addIssue({
        code: 'custom',
        message: 'may not be specified when port is not specified',
        path: ['endPort'],
      });
    } else if (typeof p.port === 'string') {
      ctx.addIssue({
        code: 'custom',
        message: 'may not be specified when port is non-numeric',
        path: ['endPort'],
      });
    } else if (p.endPort < p.port) {
      ctx.addIssue({
        code: 'custom',
        message: `must be >= port (${p.port})`,
        path: ['endPort'],
      });
    }
  });

const networkPolicySpec = z
  .strictObject({
    podSelector: kubeSelector,
    policyTypes: z.array(z.enum(['Ingress', 'Egress'])).optional(),
    ingress: z
      .array(
        z.strictObject({
          from: z.array(peer).optional(),
          ports: z.array(networkPolicyPort).optional(),
        }),
      )
      .optional(),
    egress: z
      .array(
        z.strictObject({
          to: z.array(peer).optional(),
          ports: z.array(networkPolicyPort).optional(),
        }),
      )
      .optional(),
  })
  .superRefine((spec, ctx) => {
    const seen = new Set<string>();
    (spec.policyTypes ?? []).forEach((t, i) => {
      if (seen.has(t)) {
        ctx.addIssue({ code: 'custom', message: 'duplicate value', path: ['policyTypes', i] });
      }
      seen.add(t);
    });
  })
  // The API server's defaulting, stored so that consumers never re-default: Ingress always,
  // Egress when egress rules are present.
  .transform((spec) => {
    const given = spec.policyTypes ?? [];
    const egress = spec.egress !== undefined && spec.egress.length > 0;
    const policyTypes: ('Ingress' | 'Egress')[] =
      given.length > 0 ? given : egress ? ['Ingress', 'Egress'] : ['Ingress'];
    return { ...spec, policyTypes };
  });

export const networkPolicySchema = (
  identity: IdentitySchema<'NetworkPolicy'>,
): z.ZodType<KindTypes['NetworkPolicy']> => identity.extend({ spec: networkPolicySpec }).strict();

// ---- the types consumers read (field names exactly the APIs') ----

export type LabelSelector = z.infer<typeof ciliumSelector>;
export type LabelSelectorRequirement = NonNullable<LabelSelector['matchExpressions']>[number];
export type Entity = z.infer<typeof entity>;
export type L4Proto = (typeof L4_PROTOCOLS)[number];
export type CIDRRule = z.infer<typeof cidrRule>;
export type PortProtocol = z.infer<typeof portProtocol>;
export type PortRule = z.infer<typeof portRule>;
/** One element of `ingress` or `ingressDeny`. */
export type IngressRule = z.infer<typeof ingressRule>;
/** One element of `egress` or `egressDeny`. */
export type EgressRule = z.infer<typeof egressRule>;
/** One rule of a CiliumNetworkPolicy or CiliumClusterwideNetworkPolicy (`spec` or `specs[i]`). */
export type PolicyRule = z.infer<typeof clusterwideRule>;
export type PolicyStatus = z.infer<typeof policyStatus>;

export type NetworkPolicySpec = z.output<typeof networkPolicySpec>;
export type NetworkPolicyPeer = z.infer<typeof peer>;
export type IPBlock = z.infer<typeof ipBlock>;
export type NetworkPolicyPort = z.output<typeof networkPolicyPort>;
export type NetworkPolicyIngressRule = NonNullable<NetworkPolicySpec['ingress']>[number];
export type NetworkPolicyEgressRule = NonNullable<NetworkPolicySpec['egress']>[number];
