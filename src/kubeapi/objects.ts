import { formatPath, isRecord, validateObject } from '../registry/validation.js';
import type { RegistryObject } from '../registry/types.js';
import type { ApiResource } from './resources.js';
import { badRequest, invalid, type StatusCause } from './status.js';

/**
 * Objects crossing the API: the registry's validation turned into the API server's
 * answers (422 Invalid with causes, 400 strict decoding errors for unknown fields under
 * `fieldValidation=Strict`, warnings under `Warn`), and objects shown in the version the
 * client asked for.
 */

export type FieldValidation = 'Strict' | 'Warn' | 'Ignore';

export function parseFieldValidation(v: string | null): FieldValidation {
  if (v === null || v === '') return 'Warn';
  if (v === 'Strict' || v === 'Warn' || v === 'Ignore') return v;
  throw badRequest(
    `fieldValidation must be one of "Ignore", "Warn" or "Strict", got ${JSON.stringify(v.slice(0, 40))}`,
  );
}

export interface Validated {
  readonly object: RegistryObject;
  /** `unknown field "spec.foo"`: sent back as Warning headers. */
  readonly warnings: string[];
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

function deleteAt(root: unknown, path: readonly PropertyKey[]): boolean {
  const parent = valueAt(root, path.slice(0, -1));
  const last = path[path.length - 1];
  if (isRecord(parent) && typeof last === 'string' && Object.hasOwn(parent, last)) {
    Reflect.deleteProperty(parent, last);
    return true;
  }
  return false;
}

function describeValue(v: unknown): string {
  if (typeof v === 'string') return JSON.stringify(v);
  if (typeof v === 'number' || typeof v === 'boolean') return String(v);
  if (v === null) return 'null';
  return `"${Array.isArray(v) ? 'array' : typeof v}"`;
}

/**
 * Validates `doc` (modified: unknown fields are removed under Warn and Ignore) as `r`'s kind.
 * The kind and apiVersion default to the URL's; a different kind is a 400.
 */
export function validateFor(
  r: ApiResource,
  doc: Record<string, unknown>,
  mode: FieldValidation,
): Validated {
  if (doc.kind !== undefined && doc.kind !== r.kind) {
    const given = typeof doc.kind === 'string' ? doc.kind : JSON.stringify(doc.kind);
    throw badRequest(
      `${given} in version ${JSON.stringify(r.version)} cannot be handled as a ${r.kind}: ` +
        `the kind in the data (${given}) does not match the kind of the URL (${r.kind})`,
    );
  }
  doc.kind = r.kind;
  doc.apiVersion ??= r.groupVersion;
  const warnings: string[] = [];
  const name =
    isRecord(doc.metadata) && typeof doc.metadata.name === 'string' ? doc.metadata.name : '';
  for (let i = 0; i < 1000; i++) {
    const res = validateObject(doc);
    if (res.ok) return { object: res.object, warnings };
    const { path, reason } = res.problem;
    const field = formatPath(path);
    if (reason === 'unknown field') {
      if (mode === 'Strict') {
        throw badRequest(
          `${r.kind} in version ${JSON.stringify(r.version)} cannot be handled as a ${r.kind}: ` +
            `strict decoding error: unknown field ${JSON.stringify(field)}`,
        );
      }
      if (!deleteAt(doc, path)) break;
      if (mode === 'Warn') warnings.push(`unknown field ${JSON.stringify(field)}`);
      continue;
    }
    const cause: StatusCause =
      reason === 'required'
        ? { reason: 'FieldValueRequired', message: 'Required value', field }
        : {
            reason: 'FieldValueInvalid',
            message: `Invalid value: ${describeValue(valueAt(doc, path))}: ${reason.replace(/, received .*$/, '')}`,
            field,
          };
    throw invalid(r.kind, r.group, name, [cause]);
  }
  throw invalid(r.kind, r.group, name, [{ reason: 'FieldValueInvalid', message: 'Invalid value' }]);
}

/** The object as served through `r`'s group-version (MCS kinds are served in two). */
export function inVersion(r: ApiResource, obj: RegistryObject): RegistryObject {
  return obj.apiVersion === r.groupVersion ? obj : { ...obj, apiVersion: r.groupVersion };
}
