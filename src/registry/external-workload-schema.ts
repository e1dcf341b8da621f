import { z } from 'zod';
import { parseCIDR, parseIP } from '../keyspace/index.js';
import type { IdentitySchema } from './schemas.js';
import type { RegistryObject } from './types.js';

/**
 * CiliumExternalWorkload (cilium.io/v2, cluster-scoped): a VM or bare-metal host allowed to
 * join the cluster under its name. Its labels become the identity labels of the workload;
 * `spec.ipv4-alloc-cidr` bounds the address it may register with. The status is written by
 * the apiserver's external-workload mode: `id` and `ip` as Cilium's, plus whether the VM
 * registered and is connected now, and the last refused registration.
 */
export interface CiliumExternalWorkload extends RegistryObject {
  readonly kind: 'CiliumExternalWorkload';
  readonly spec: {
    readonly 'ipv4-alloc-cidr'?: string | undefined;
    readonly 'ipv6-alloc-cidr'?: string | undefined;
    readonly [field: string]: unknown;
  };
  readonly status?:
    | {
        readonly id?: number | undefined;
        readonly ip?: string | undefined;
        readonly registered?: boolean | undefined;
        readonly connected?: boolean | undefined;
        /** The last refused registration of this name: `<ip>: <reason>`. */
        readonly refused?: string | undefined;
        readonly [field: string]: unknown;
      }
    | undefined;
}

function cidrOf(family: 4 | 6) {
  return z.string().refine((s) => {
    const c = parseCIDR(s);
    return c !== null && c.bits === (family === 4 ? 32 : 128);
  }, `must be a valid IPv${family} CIDR (address/prefix-length)`);
}

export const ciliumExternalWorkloadSchema = (
  identity: IdentitySchema<'CiliumExternalWorkload'>,
): z.ZodType<CiliumExternalWorkload> =>
  identity.extend({
    spec: z
      .looseObject({
        'ipv4-alloc-cidr': cidrOf(4).optional(),
        'ipv6-alloc-cidr': cidrOf(6).optional(),
      })
      .prefault({}),
    status: z
      .looseObject({
        id: z.number().int().min(0).max(0xffffffff).optional(),
        ip: z
          .string()
          .refine((s) => s === '' || parseIP(s) !== null, 'must be a valid IP address')
          .optional(),
        registered: z.boolean().optional(),
        connected: z.boolean().optional(),
        refused: z.string().optional(),
      })
      .optional(),
  });
