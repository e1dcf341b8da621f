import type { RegistryObject } from '../registry/types.js';
import { badRequest } from './status.js';

/**
 * Label and field selectors as the Kubernetes API takes them in `labelSelector=` and
 * `fieldSelector=` (the string forms kubectl sends): `a=b`, `a==b`, `a!=b`,
 * `a in (x,y)`, `a notin (x)`, `a`, `!a` for labels; `=`, `==`, `!=` for fields.
 */

export type LabelRequirement =
  | { readonly op: 'eq' | 'neq'; readonly key: string; readonly value: string }
  | { readonly op: 'in' | 'notin'; readonly key: string; readonly values: readonly string[] }
  | { readonly op: 'exists' | 'notexists'; readonly key: string };

export type LabelSelector = readonly LabelRequirement[];

const KEY = /^([A-Za-z0-9][-A-Za-z0-9_./]*)?[A-Za-z0-9]$/;
const VALUE = /^(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?$/;

function parseProblem(text: string, why: string): Error {
  return badRequest(`unable to parse requirement: ${why} in ${JSON.stringify(text.slice(0, 80))}`);
}

/** Splits on commas that are not inside parentheses. */
function splitTop(text: string): string[] {
  const out: string[] = [];
  let depth = 0;
  let cur = '';
  for (const ch of text) {
    if (ch === '(') depth++;
    if (ch === ')') depth--;
    if (ch === ',' && depth === 0) {
      out.push(cur);
      cur = '';
    } else cur += ch;
  }
  out.push(cur);
  return out;
}

function checkKey(key: string, whole: string): string {
  if (!KEY.test(key)) throw parseProblem(whole, `invalid label key ${JSON.stringify(key)}`);
  return key;
}

function checkValue(value: string, whole: string): string {
  if (value.length > 63 || !VALUE.test(value)) {
    throw parseProblem(whole, `invalid label value ${JSON.stringify(value)}`);
  }
  return value;
}

/** Parses a label selector; the empty string selects everything. 400 BadRequest when malformed. */
export function parseLabelSelector(text: string): LabelSelector {
  const reqs: LabelRequirement[] = [];
  if (text.trim() === '') return reqs;
  for (const raw of splitTop(text)) {
    const part = raw.trim();
    if (part === '') throw parseProblem(text, 'empty requirement');
    const set = /^(\S+)\s+(in|notin)\s*\((.*)\)$/.exec(part);
    if (set !== null) {
      const [, key = '', op, list = ''] = set;
      const values = list
        .split(',')
        .map((v) => v.trim())
        .filter((v) => v !== '')
        .map((v) => checkValue(v, text));
      reqs.push({ op: op === 'in' ? 'in' : 'notin', key: checkKey(key, text), values });
      continue;
    }
    const cmp = /^([^=!\s]+)\s*(==|!=|=)\s*(.*)$/.exec(part);
    if (cmp !== null) {
      const [, key = '', op, value = ''] = cmp;
      reqs.push({
        op: op === '!=' ? 'neq' : 'eq',
        key: checkKey(key, text),
        value: checkValue(value.trim(), text),
      });
      continue;
    }
    if (part.startsWith('!')) {
      reqs.push({ op: 'notexists', key: checkKey(part.slice(1).trim(), text) });
      continue;
    }
    reqs.push({ op: 'exists', key: checkKey(part, text) });
  }
  return reqs;
}

export function matchesLabels(
  selector: LabelSelector,
  labels: Readonly<Record<string, string>> | undefined,
): boolean {
  const l = labels ?? {};
  return selector.every((r) => {
    const has = Object.hasOwn(l, r.key);
    const v = l[r.key];
    switch (r.op) {
      case 'eq':
        return has && v === r.value;
      case 'neq':
        return !has || v !== r.value;
      case 'in':
        return has && r.values.includes(v ?? '');
      case 'notin':
        return !has || !r.values.includes(v ?? '');
      case 'exists':
        return has;
      case 'notexists':
        return !has;
    }
    return false;
  });
}

export interface FieldRequirement {
  readonly field: string;
  /** `field` split at its dots once, when parsed, rather than per object matched. */
  readonly path: readonly string[];
  readonly op: 'eq' | 'neq';
  readonly value: string;
}

export type FieldSelector = readonly FieldRequirement[];

/** Fields every kind can be selected on, as in Kubernetes. */
const COMMON_FIELDS = ['metadata.name', 'metadata.namespace'];
/** Extra selectable fields of some kinds (those the Kubernetes API server also offers). */
const KIND_FIELDS: Readonly<Record<string, readonly string[]>> = {
  Pod: [
    'spec.nodeName',
    'spec.restartPolicy',
    'spec.serviceAccountName',
    'status.phase',
    'status.podIP',
  ],
  Namespace: ['status.phase'],
};

export function selectableFields(kind: string): readonly string[] {
  return [...COMMON_FIELDS, ...(KIND_FIELDS[kind] ?? [])];
}

/** Parses a field selector for `kind`; 400 BadRequest for a malformed one or an unknown field. */
export function parseFieldSelector(text: string, kind: string): FieldSelector {
  const reqs: FieldRequirement[] = [];
  if (text.trim() === '') return reqs;
  const allowed = selectableFields(kind);
  for (const raw of text.split(',')) {
    const m = /^\s*([^=!\s]+)\s*(==|!=|=)\s*(.*?)\s*$/.exec(raw);
    if (m === null) {
      throw badRequest(
        `invalid selector: ${JSON.stringify(raw.slice(0, 80))}; can't understand it`,
      );
    }
    const [, field = '', op, value = ''] = m;
    if (!allowed.includes(field)) {
      throw badRequest(
        `field label not supported: ${field} (${kind} supports ${allowed.map((f) => JSON.stringify(f)).join(', ')})`,
      );
    }
    reqs.push({ field, path: field.split('.'), op: op === '!=' ? 'neq' : 'eq', value });
  }
  return reqs;
}

function fieldValue(obj: RegistryObject, path: readonly string[]): string {
  let v: unknown = obj;
  for (const p of path) {
    v = typeof v === 'object' && v !== null ? (v as Record<string, unknown>)[p] : undefined;
  }
  return typeof v === 'string' ? v : typeof v === 'number' ? String(v) : '';
}

export function matchesFields(selector: FieldSelector, obj: RegistryObject): boolean {
  return selector.every((r) => (fieldValue(obj, r.path) === r.value) === (r.op === 'eq'));
}

/** Everything a list or watch filters objects by. */
export interface ObjectFilter {
  readonly namespace?: string | undefined;
  readonly labels: LabelSelector;
  readonly fields: FieldSelector;
}

export function matchesFilter(filter: ObjectFilter, obj: RegistryObject): boolean {
  if (filter.namespace !== undefined && obj.metadata.namespace !== filter.namespace) return false;
  return matchesLabels(filter.labels, obj.metadata.labels) && matchesFields(filter.fields, obj);
}
