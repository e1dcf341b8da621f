/**
 * STABLE KEYSPACE CONTRACT — the identity label string stored as the value of
 * `cilium/state/identities/v1/id/<id>` and embedded in `…/value/<labels>/<suffix>`
 * keys. Format (reference `Labels.SortedList()` / `Label.FormatForKVStore()`):
 * `source:key=value;` for every label, sorted by label key, every label ending in `;`
 * (even the last, and `=` is written even when the value is empty):
 *
 *   k8s:app=foo;k8s:io.cilium.k8s.policy.cluster=c2;reserved:host=;
 */

import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { compareGoStrings } from './gojson.js';

export interface Label {
  /** e.g. `k8s`, `reserved`, `cidr`; `unspec` when the text had none. */
  readonly source: string;
  readonly key: string;
  readonly value: string;
}

export const LabelSource = {
  Unspec: 'unspec',
  Any: 'any',
  K8s: 'k8s',
  Reserved: 'reserved',
  CIDR: 'cidr',
  FQDN: 'fqdn',
  Container: 'container',
  CiliumGenerated: 'cilium-generated',
} as const;

/** Every endpoint identity of a mesh member carries `k8s:<this>=<cluster name>`. */
export const PolicyLabelCluster = 'io.cilium.k8s.policy.cluster';
export const PolicyLabelServiceAccount = 'io.cilium.k8s.policy.serviceaccount';
export const PodNamespaceLabel = 'io.kubernetes.pod.namespace';
export const PodNamespaceMetaLabelsPrefix = 'io.cilium.k8s.namespace.labels';

/** The cluster label of an identity: `k8s:io.cilium.k8s.policy.cluster=<cluster>`. */
export function clusterLabel(clusterName: string): Label {
  return { source: LabelSource.K8s, key: PolicyLabelCluster, value: clusterName };
}

/**
 * Parses one label in the reference's text form: `source:key=value`, `source:key`,
 * `key=value` (source `unspec`) or `$key` (source `reserved`). A `:` only separates
 * the source when it comes before the first `=`, so values may contain colons.
 */
export function parseLabel(text: string): Label {
  let source: string = LabelSource.Unspec;
  let rest = text;
  if (text.startsWith('$')) {
    source = LabelSource.Reserved;
    rest = text.slice(1);
  } else {
    const colon = text.indexOf(':');
    const eq = text.indexOf('=');
    if (colon >= 0 && (eq < 0 || colon < eq)) {
      if (colon > 0) source = text.slice(0, colon);
      rest = text.slice(colon + 1);
    }
  }
  const eq = rest.indexOf('=');
  return eq < 0
    ? { source, key: rest, value: '' }
    : { source, key: rest.slice(0, eq), value: rest.slice(eq + 1) };
}

/** `source:key=value`, or `source:key` when the value is empty (reference `Label.String()`). */
export function formatLabel(label: Label): string {
  const base = `${label.source}:${label.key}`;
  return label.value === '' ? base : `${base}=${label.value}`;
}

/** Sorts by key like the reference; source then value only break ties deterministically. */
export function sortLabels(labels: readonly Label[]): Label[] {
  return [...labels].sort(
    (a, b) =>
      compareGoStrings(a.key, b.key) ||
      compareGoStrings(a.source, b.source) ||
      compareGoStrings(a.value, b.value),
  );
}

/**
 * Converts `{"k8s:app": "foo"}` (CiliumIdentity `security-labels`, where the map key
 * carries the source) into labels.
 */
export function labelsFromRecord(record: Readonly<Record<string, string>>): Label[] {
  return Object.entries(record).map(([sourceAndKey, value]) => {
    const parsed = parseLabel(sourceAndKey);
    return { source: parsed.source, key: parsed.key, value };
  });
}

/** Inverse of {@link labelsFromRecord}: `{"<source>:<key>": value}`. */
export function labelsToRecord(labels: readonly Label[]): Record<string, string> {
  const out: Record<string, string> = {};
  for (const l of labels) out[`${l.source}:${l.key}`] = l.value;
  return out;
}

function checkLabel(label: Label): void {
  // These characters would make the string ambiguous to parse back.
  const bad =
    label.source === '' ||
    /[:;=]/.test(label.source) ||
    label.key === '' ||
    /[;=]/.test(label.key) ||
    label.value.includes(';');
  if (bad) {
    throw new ClusterMeshError(
      ErrorCode.InvalidArgument,
      `label ${JSON.stringify(formatLabel(label))} cannot be stored in the kvstore: source and key must be non-empty, source must not contain ':', '=' or ';', key must not contain '=' or ';', value must not contain ';'`,
    );
  }
}

/**
 * The identity label string: `source:key=value;` per label, sorted by key. Accepts
 * labels or a `{"source:key": value}` record.
 */
export function formatLabelsForKVStore(
  labels: readonly Label[] | Readonly<Record<string, string>>,
): string {
  const list = Array.isArray(labels)
    ? (labels as readonly Label[])
    : labelsFromRecord(labels as Readonly<Record<string, string>>);
  let out = '';
  for (const l of sortLabels(list)) {
    checkLabel(l);
    out += `${l.source}:${l.key}=${l.value};`;
  }
  return out;
}

/**
 * Parses an identity label string back into sorted labels. Empty segments (the one
 * after the trailing `;`) and segments without a key are skipped, like the reference.
 */
export function parseLabelsFromKVStore(text: string): Label[] {
  const out: Label[] = [];
  for (const segment of text.split(';')) {
    if (segment === '') continue;
    const label = parseLabel(segment);
    if (label.key !== '') out.push(label);
  }
  return sortLabels(out);
}
