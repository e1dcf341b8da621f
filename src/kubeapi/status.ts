/**
 * Kubernetes `Status` objects, worded as the Kubernetes API server words them, because
 * kubectl prints them (and builds some of its messages from `details`).
 */

export interface StatusCause {
  readonly reason: string;
  readonly message: string;
  readonly field?: string;
}

export interface StatusDetails {
  readonly name?: string;
  readonly group?: string;
  readonly kind?: string;
  readonly causes?: readonly StatusCause[];
  readonly retryAfterSeconds?: number;
}

export interface Status {
  readonly kind: 'Status';
  readonly apiVersion: 'v1';
  readonly metadata: Record<string, never>;
  readonly status: 'Success' | 'Failure';
  readonly message?: string;
  readonly reason?: string;
  readonly details?: StatusDetails;
  readonly code: number;
}

/** An error answered as a Status (thrown by handlers, caught by the router). */
export class ApiError extends Error {
  constructor(
    readonly code: number,
    readonly reason: string,
    message: string,
    readonly details?: StatusDetails,
  ) {
    super(message);
    this.name = 'ApiError';
  }

  toStatus(): Status {
    return failure(this.code, this.reason, this.message, this.details);
  }
}

export function failure(
  code: number,
  reason: string,
  message: string,
  details?: StatusDetails,
): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Failure',
    message,
    reason,
    ...(details === undefined ? {} : { details }),
    code,
  };
}

export function success(details?: StatusDetails): Status {
  return {
    kind: 'Status',
    apiVersion: 'v1',
    metadata: {},
    status: 'Success',
    ...(details === undefined ? {} : { details }),
    code: 200,
  };
}

/** What an object is called in messages: `services`, `deployments.apps`. */
export interface ResourceRef {
  readonly resource: string;
  readonly group: string;
}

export function qualified(r: ResourceRef): string {
  return r.group === '' ? r.resource : `${r.resource}.${r.group}`;
}

function details(r: ResourceRef, name: string): StatusDetails {
  return { name, ...(r.group === '' ? {} : { group: r.group }), kind: r.resource };
}

export function notFound(r: ResourceRef, name: string): ApiError {
  return new ApiError(
    404,
    'NotFound',
    `${qualified(r)} ${JSON.stringify(name)} not found`,
    details(r, name),
  );
}

export function alreadyExists(r: ResourceRef, name: string): ApiError {
  return new ApiError(
    409,
    'AlreadyExists',
    `${qualified(r)} ${JSON.stringify(name)} already exists`,
    details(r, name),
  );
}

export function conflict(r: ResourceRef, name: string): ApiError {
  return new ApiError(
    409,
    'Conflict',
    `Operation cannot be fulfilled on ${qualified(r)} ${JSON.stringify(name)}: the object has been ` +
      'modified; please apply your changes to the latest version and try again',
    details(r, name),
  );
}

/** 422: kubectl prints `The <Kind> "<name>" is invalid: <field>: <message>` from the causes. */
export function invalid(
  kind: string,
  group: string,
  name: string,
  causes: readonly StatusCause[],
): ApiError {
  const text = causes.map((c) => (c.field === undefined ? c.message : `${c.field}: ${c.message}`));
  const list = text.length === 1 ? (text[0] ?? '') : `[${text.join(', ')}]`;
  return new ApiError(422, 'Invalid', `${kind} ${JSON.stringify(name)} is invalid: ${list}`, {
    name,
    ...(group === '' ? {} : { group }),
    kind,
    causes,
  });
}

export function badRequest(message: string): ApiError {
  return new ApiError(400, 'BadRequest', message);
}

export function unauthorized(): ApiError {
  return new ApiError(401, 'Unauthorized', 'Unauthorized');
}

export function pageNotFound(): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource');
}

export function methodNotAllowed(): ApiError {
  return new ApiError(
    405,
    'MethodNotAllowed',
    'the server does not allow this method on the requested resource',
  );
}

export function unsupportedMediaType(contentType: string): ApiError {
  return new ApiError(
    415,
    'UnsupportedMediaType',
    `the body of the request was in an unknown format (${contentType}) - accepted media types include: ` +
      'application/json-patch+json, application/merge-patch+json, application/strategic-merge-patch+json',
  );
}

/** 410 for a watch or list from a resourceVersion older than the history kept. */
export function expired(requested: string, oldest: number): ApiError {
  return new ApiError(410, 'Expired', `too old resource version: ${requested} (${oldest})`);
}

export function internalError(message: string): ApiError {
  return new ApiError(500, 'InternalError', `Internal error occurred: ${message}`);
}
