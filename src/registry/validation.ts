import type { z } from 'zod';
import { ClusterMeshError, ErrorCode } from '../lib/errors.js';
import { findKind, knownKindNames, type KindInfo } from './kinds.js';
import type { RegistryObject } from './types.js';

/**
 * Validation of objects as users write them: the envelope (kind, apiVersion, namespace)
 * against the kind table, then the kind's schema, reported as one line per object.
 */

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
  const schema = opts.identityOnly === true ? info.identitySchema : info.schema;
  const parsed = schema.safeParse(input);
  if (!parsed.success) {
    const [first] = parsed.error.issues;
    if (first === undefined) return fail([], 'invalid');
    const more = parsed.error.issues.length - 1;
    if (first.code === 'unrecognized_keys') {
      // Name the field itself, as kubectl's strict field validation does.
      const [key, ...rest] = first.keys;
      return {
        ok: false,
        problem: {
          path: key === undefined ? first.path : [...first.path, key],
          reason: 'unknown field',
          more: more + rest.length,
        },
      };
    }
    return {
      ok: false,
      problem: { path: first.path, reason: issueReason(first, input), more },
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
