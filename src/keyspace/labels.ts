/**
 * STABLE KEYSPACE CONTRACT — the identity label string stored as the value of
 * `cilium/state/identities/v1/id/<id>` and embedded in `…/value/<labels>/<suffix>`
 * keys. Format (reference `Labels.SortedList()` / `Label.FormatForKVStore()`):
 * `source:key=value;` for every label, sorted by label key, every label ending in `;`
 * (even the last, and `=` is written even when the value is empty):
 *
 *   k8s:app=foo;k8s:io.cilium.k8s.policy.cluster=c2;reserved:host=;
 */

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
 * Parses one label in the reference's text form (`ParseLabel`): `source:key=value`,
 * `source:key`, `key=value` (source `unspec`) or `$key` (source `reserved`). The
 * source ends at the first `:` anywhere in the text, so `a=b:c` is source `a=b`,
 * key `c`; a leading `:` leaves the source `unspec`.
 */
export function parseLabel(text: string): Label {
  let source: string = LabelSource.Unspec;
  let rest = text;
  if (text.startsWith('$')) {
    source = LabelSource.Reserved;
    rest = text.slice(1);
  } else {
    const colon = text.indexOf(':');
    if (colon >= 0) {
      if (colon > 0) source = text.slice(0, colon);
      rest = text.slice(colon + 1);
    }
  }
  const eq = rest.indexOf('=');
  if (eq < 0) return { source, key: rest, value: '' };
  // `reserved:=host` / `$=host`: the reference reads the value as the key.
  if (eq === 0 && source === LabelSource.Reserved) return { source, key: rest.slice(1), value: '' };
  return { source, key: rest.slice(0, eq), value: rest.slice(eq + 1) };
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

/**
 * The identity label string: `source:key=value;` per label, sorted by key (reference
 * `Map2Labels(…).SortedList()`). Accepts labels or a `{"source:key": value}` record.
 * The reference holds labels in a map keyed by the key alone, so of several labels
 * with one key (`k8s:app` and `container:app`) only one survives; here the last one
 * given. Like the reference, nothing is escaped: a value containing `;` is written as
 * it is, and reads back as more than one label.
 */
export function formatLabelsForKVStore(
  labels: readonly Label[] | Readonly<Record<string, string>>,
): string {
  const list = Array.isArray(labels)
    ? (labels as readonly Label[])
    : labelsFromRecord(labels as Readonly<Record<string, string>>);
  const byKey = new Map<string, Label>();
  for (const l of list) byKey.set(l.key, l);
  let out = '';
  for (const key of [...byKey.keys()].sort(compareGoStrings)) {
    const l = byKey.get(key);
    if (l !== undefined) out += `${l.source}:${l.key}=${l.value};`;
  }
  return out;
}

/**
 * Parses an identity label string into labels in stored order, duplicates kept
 * (reference `NewLabelArrayFromSortedList`): readers such as the cluster-name
 * validator report the first offending label as it was stored. Empty segments (the
 * one after the trailing `;`) and segments without a key are skipped.
 */
export function parseLabelsFromKVStore(text: string): Label[] {
  const out: Label[] = [];
  for (const segment of text.split(';')) {
    if (segment === '') continue;
    const label = parseLabel(segment);
    if (label.key !== '') out.push(label);
  }
  return out;
}
