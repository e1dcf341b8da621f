/**
 * The registration a VM writes at `cilium/state/noderegister/v1/<name>`: Cilium's
 * `RegisterNode`, a Node whose key is just the name. The VM writes it with `NodeIdentity`
 * 0; the apiserver answers in the same key, with the identity it allocated (accepted) or
 * with a `Refused` field carrying the one-line reason (our addition: without it, a VM
 * could not tell a refusal from a slow apiserver).
 */
import {
  NodeAddressType,
  NodeRegisterPrefix,
  decodeNode,
  encodeNode,
  makeNode,
  nodeRegisterKey,
  type Node,
} from '../keyspace/index.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';

export const REGISTRATION_PREFIX = `${NodeRegisterPrefix}/`;

export function registrationKey(name: string): string {
  return nodeRegisterKey(name);
}

/** The workload name of a registration key, or undefined for anything else under the prefix. */
export function registrationName(key: string): string | undefined {
  if (!key.startsWith(REGISTRATION_PREFIX)) return undefined;
  const name = key.slice(REGISTRATION_PREFIX.length);
  return name === '' || name.includes('/') ? undefined : name;
}

export interface Registration {
  readonly node: Node;
  /** Set by the apiserver when it refused the registration. */
  readonly refused?: string | undefined;
}

/** What a VM registers: its name, cluster and address; no identity yet. */
export function registrationRequest(opts: {
  readonly name: string;
  readonly cluster: string;
  readonly clusterId: number;
  readonly ip: string;
}): Registration {
  return {
    node: makeNode({
      Name: opts.name,
      Cluster: opts.cluster,
      ClusterID: opts.clusterId,
      IPAddresses: [{ Type: NodeAddressType.InternalIP, IP: opts.ip }],
      Source: 'kvstore',
    }),
  };
}

export function encodeRegistration(r: Registration): string {
  const node = encodeNode(r.node);
  if (r.refused === undefined) return node;
  return `${node.slice(0, -1)},"Refused":${JSON.stringify(r.refused)}}`;
}

/** Decodes the value at `registrationKey(name)`; ERR_INVALID_ENTRY with one line otherwise. */
export function decodeRegistration(name: string, value: string): Registration {
  let raw: unknown;
  try {
    raw = JSON.parse(value);
  } catch (err) {
    throw new ClusterMeshError(
      ErrorCode.InvalidEntry,
      `registration ${name}: not JSON: ${errorMessage(err).slice(0, 80)}`,
    );
  }
  const obj = typeof raw === 'object' && raw !== null ? (raw as Record<string, unknown>) : {};
  const cluster = typeof obj.Cluster === 'string' ? obj.Cluster : '';
  const node = decodeNode(`${cluster}/${name}`, value);
  const refused = typeof obj.Refused === 'string' ? obj.Refused : undefined;
  return refused === undefined ? { node } : { node, refused };
}

/** The addresses a registration carries, InternalIP first. */
export function registrationIPs(node: Node): string[] {
  const internal = node.IPAddresses.filter((a) => a.Type === NodeAddressType.InternalIP);
  const other = node.IPAddresses.filter((a) => a.Type !== NodeAddressType.InternalIP);
  return [...internal, ...other].map((a) => a.IP).filter((ip) => ip !== '');
}
