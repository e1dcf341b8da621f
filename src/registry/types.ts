/**
 * The local cluster registry: Kubernetes-shaped objects stored in the cluster's
 * kvstore under `registry/<resource>/<namespace>/<name>` (cluster-scoped:
 * `registry/<resource>/<name>`). It stands in for the Kubernetes API in local mode;
 * a Kubernetes adapter can implement the same `ObjectSource` later.
 *
 * This file is the contract between the registry and its consumers (daemons).
 */

export interface ObjectMeta {
  readonly name: string;
  readonly namespace?: string | undefined;
  /** Set by the registry on create. */
  readonly uid?: string | undefined;
  /** The object's etcd mod revision, as a decimal string (Kubernetes style). */
  readonly resourceVersion?: string | undefined;
  /** RFC3339, set by the registry on create. */
  readonly creationTimestamp?: string | undefined;
  readonly labels?: Readonly<Record<string, string>> | undefined;
  readonly annotations?: Readonly<Record<string, string>> | undefined;
  readonly generation?: number | undefined;
  /** The objects this one belongs to (a Pod to its Deployment, a CiliumEndpoint to its Pod). */
  readonly ownerReferences?: readonly OwnerReference[] | undefined;
}

export interface OwnerReference {
  readonly apiVersion: string;
  readonly kind: string;
  readonly name: string;
  readonly uid: string;
  /** The owner is the object's managing controller (at most one reference has it). */
  readonly controller?: boolean | undefined;
  readonly blockOwnerDeletion?: boolean | undefined;
}

export interface RegistryObject {
  readonly apiVersion: string;
  readonly kind: string;
  readonly metadata: ObjectMeta;
  readonly spec?: unknown;
  readonly status?: unknown;
  readonly [field: string]: unknown;
}

// ---- the typed shapes daemons consume (validated by the registry's schemas) ----

export interface CiliumNode extends RegistryObject {
  readonly kind: 'CiliumNode';
  readonly spec: {
    readonly addresses?: readonly { readonly type: string; readonly ip: string }[] | undefined;
    readonly ipam?:
      | {
          readonly podCIDRs?: readonly string[] | undefined;
          /** Multi-pool IPAM: the CIDRs allocated to this node, per pool. */
          readonly pools?:
            | {
                readonly allocated?:
                  | readonly { readonly pool?: string; readonly cidrs?: readonly string[] }[]
                  | undefined;
              }
            | undefined;
        }
      | undefined;
    readonly health?: { readonly ipv4?: string; readonly ipv6?: string } | undefined;
    readonly ingress?: { readonly ipv4?: string; readonly ipv6?: string } | undefined;
    readonly encryption?: { readonly key?: number } | undefined;
    readonly 'instance-id'?: string | undefined;
    readonly bootid?: string | undefined;
    readonly nodeidentity?: number | undefined;
  };
}

export interface CiliumEndpoint extends RegistryObject {
  readonly kind: 'CiliumEndpoint';
  readonly status: {
    readonly id?: number | undefined;
    readonly identity?:
      { readonly id: number; readonly labels?: readonly string[] | undefined } | undefined;
    readonly networking?:
      | {
          readonly addressing: readonly {
            readonly ipv4?: string | undefined;
            readonly ipv6?: string | undefined;
          }[];
          readonly node?: string | undefined;
        }
      | undefined;
    readonly encryption?: { readonly key?: number | undefined } | undefined;
    readonly 'named-ports'?:
      | readonly { readonly name: string; readonly port: number; readonly protocol?: string }[]
      | undefined;
    /** `ready` once the endpoint serves traffic (Cilium's endpoint state). */
    readonly state?: string | undefined;
  };
}

/** Name = decimal numeric identity. */
export interface CiliumIdentity extends RegistryObject {
  readonly kind: 'CiliumIdentity';
  readonly 'security-labels': Readonly<Record<string, string>>;
}

// ---- informers ----

export type ObjectEvent<T extends RegistryObject> =
  | { readonly type: 'added' | 'modified'; readonly object: T; readonly old?: T | undefined }
  | { readonly type: 'deleted'; readonly object: T };

export interface InformerHandlers<T extends RegistryObject> {
  onEvent(event: ObjectEvent<T>): void;
  /** Called once, after the initial list has been delivered. */
  onSynced?(): void;
}

/** List-and-watch of one kind: what daemons use instead of Kubernetes informers. */
export interface Informer<T extends RegistryObject> {
  /** Runs until `signal` aborts; restarts by itself on kvstore errors. */
  run(signal: AbortSignal): Promise<void>;
  readonly hasSynced: boolean;
  /** The current cache, keyed `<namespace>/<name>` (or `<name>`). */
  list(): readonly T[];
  get(namespace: string | undefined, name: string): T | undefined;
}
