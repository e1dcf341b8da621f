import { createHmac, timingSafeEqual } from 'node:crypto';
import { MAX_BODY_BYTES, sendJson } from './http.js';
import type { RequestContext, SubresourceHandler, Target } from './handlers.js';
import { ApiError, badRequest, methodNotAllowed, notFound, unauthorized } from './status.js';
import type { Registry } from '../registry/registry.js';
import type {
  ClusterRole,
  ClusterRoleBinding,
  RbacPolicyRule,
  RbacSubject,
  Role,
  RoleBinding,
  ServiceAccount,
} from '../registry/objects.js';
import { isRecord } from '../registry/validation.js';

/**
 * ServiceAccounts and RBAC for the Kubernetes API: tokens issued through the TokenRequest
 * subresource (`kubectl create token SA -n NS`), and authorization of the requests that
 * carry them by the Roles, ClusterRoles and bindings stored in the registry, with the
 * Kubernetes API server's rule semantics and 403 wording. The server's own bearer token
 * (the admin's) is not a ServiceAccount and keeps full access.
 *
 * Tokens are JWTs signed with HMAC-SHA256 under a key the server derives from its own
 * secret, so they survive a restart of the server with the same TLS material, and stop
 * working when their ServiceAccount is deleted (or re-created: the UID is in the token).
 */

/** Who a request is. */
export type KubeUser =
  | { readonly kind: 'admin' }
  | {
      readonly kind: 'serviceaccount';
      readonly namespace: string;
      readonly name: string;
      readonly uid: string;
    };

export function userName(u: KubeUser): string {
  return u.kind === 'admin' ? 'admin' : `system:serviceaccount:${u.namespace}:${u.name}`;
}

/** What authorization decides on, as Kubernetes' request attributes. */
export interface RequestAttributes {
  readonly verb: string;
  readonly apiGroup: string;
  readonly resource: string;
  readonly subresource?: string | undefined;
  readonly namespace?: string | undefined;
  readonly name?: string | undefined;
}

const ISSUER = 'https://kubernetes.default.svc.cluster.local';
const DEFAULT_EXPIRATION_SECONDS = 3600;
/** The Kubernetes API server refuses shorter tokens. */
const MIN_EXPIRATION_SECONDS = 600;
/** Paths every authenticated user may read (Kubernetes' system:discovery and public-info). */
const DISCOVERY = /^\/(api|apis|openapi|version|healthz|livez|readyz)(\/|$)/;

function b64url(data: Buffer | string): string {
  return Buffer.from(data).toString('base64url');
}

interface TokenClaims {
  readonly iss: string;
  readonly sub: string;
  readonly aud: readonly string[];
  readonly iat: number;
  readonly nbf: number;
  readonly exp: number;
  readonly 'kubernetes.io': {
    readonly namespace: string;
    readonly serviceaccount: { readonly name: string; readonly uid: string };
  };
}

/** The verb of a resource request, as the Kubernetes API server derives it. */
export function verbOf(method: string, target: Target, url: URL): string {
  const watch = url.searchParams.get('watch');
  switch (method) {
    case 'GET':
    case 'HEAD':
      if (target.name === undefined) return watch === 'true' || watch === '1' ? 'watch' : 'list';
      return 'get';
    case 'POST':
      return 'create';
    case 'PUT':
      return 'update';
    case 'PATCH':
      return 'patch';
    case 'DELETE':
      return target.name === undefined ? 'deletecollection' : 'delete';
    default:
      return method.toLowerCase();
  }
}

/** Whether `rule` allows the request (Kubernetes' RBAC rule matching). */
export function ruleAllows(rule: RbacPolicyRule, a: RequestAttributes): boolean {
  if (!rule.verbs.includes('*') && !rule.verbs.includes(a.verb)) return false;
  const groups = rule.apiGroups ?? [];
  if (!groups.includes('*') && !groups.includes(a.apiGroup)) return false;
  const resources = rule.resources ?? [];
  const combined = a.subresource === undefined ? a.resource : `${a.resource}/${a.subresource}`;
  const resourceOk = resources.some(
    (r) =>
      r === '*' ||
      r === combined ||
      (a.subresource !== undefined && (r === `*/${a.subresource}` || r === `${a.resource}/*`)),
  );
  if (!resourceOk) return false;
  const names = rule.resourceNames ?? [];
  if (names.length === 0) return true;
  return a.name !== undefined && names.includes(a.name);
}

function subjectMatches(s: RbacSubject, u: KubeUser, bindingNamespace: string | undefined) {
  if (u.kind !== 'serviceaccount') return false;
  const full = userName(u);
  switch (s.kind) {
    case 'ServiceAccount':
      // In a RoleBinding the subject's namespace defaults to the binding's.
      return s.name === u.name && (s.namespace ?? bindingNamespace) === u.namespace;
    case 'User':
      return s.name === full;
    case 'Group':
      return (
        s.name === 'system:serviceaccounts' ||
        s.name === `system:serviceaccounts:${u.namespace}` ||
        s.name === 'system:authenticated'
      );
    default:
      return false;
  }
}

/** The 403 the Kubernetes API server answers, word for word. */
export function forbidden(u: KubeUser, a: RequestAttributes): ApiError {
  const resource = a.subresource === undefined ? a.resource : `${a.resource}/${a.subresource}`;
  const scope =
    a.namespace === undefined
      ? 'at the cluster scope'
      : `in the namespace ${JSON.stringify(a.namespace)}`;
  const reason = `User ${JSON.stringify(userName(u))} cannot ${a.verb} resource ${JSON.stringify(resource)} in API group ${JSON.stringify(a.apiGroup)} ${scope}`;
  const qualified = a.apiGroup === '' ? a.resource : `${a.resource}.${a.apiGroup}`;
  const subject = a.name === undefined ? qualified : `${qualified} ${JSON.stringify(a.name)}`;
  return new ApiError(403, 'Forbidden', `${subject} is forbidden: ${reason}`, {
    ...(a.name === undefined ? {} : { name: a.name }),
    ...(a.apiGroup === '' ? {} : { group: a.apiGroup }),
    kind: a.resource,
  });
}

/** A non-resource path a ServiceAccount may not read. */
export function forbiddenPath(u: KubeUser, verb: string, path: string): ApiError {
  return new ApiError(
    403,
    'Forbidden',
    `forbidden: User ${JSON.stringify(userName(u))} cannot ${verb} path ${JSON.stringify(path)}`,
  );
}

export class Rbac {
  private readonly key: Buffer;

  constructor(
    private readonly registry: Registry,
    /** Secret material the signing key is derived from (the server's TLS key). */
    secret: string,
    private readonly now: () => Date = () => new Date(),
  ) {
    this.key = createHmac('sha256', secret).update('clustermesh serviceaccount tokens').digest();
  }

  private sign(data: string): string {
    return b64url(createHmac('sha256', this.key).update(data).digest());
  }

  issue(
    sa: ServiceAccount,
    audiences: readonly string[],
    seconds: number,
  ): { token: string; exp: Date } {
    const iat = Math.floor(this.now().getTime() / 1000);
    const claims: TokenClaims = {
      iss: ISSUER,
      sub: `system:serviceaccount:${sa.metadata.namespace ?? ''}:${sa.metadata.name}`,
      aud: audiences,
      iat,
      nbf: iat,
      exp: iat + seconds,
      'kubernetes.io': {
        namespace: sa.metadata.namespace ?? '',
        serviceaccount: { name: sa.metadata.name, uid: sa.metadata.uid ?? '' },
      },
    };
    const head = `${b64url(JSON.stringify({ alg: 'HS256', typ: 'JWT' }))}.${b64url(JSON.stringify(claims))}`;
    return { token: `${head}.${this.sign(head)}`, exp: new Date((iat + seconds) * 1000) };
  }

  /**
   * The ServiceAccount a bearer token names, or undefined when it is not one of ours. A token
   * that is ours but expired, or whose ServiceAccount is gone, is refused (401).
   */
  async authenticate(token: string): Promise<KubeUser | undefined> {
    const parts = token.split('.');
    if (parts.length !== 3) return undefined;
    const [head = '', body = '', sig = ''] = parts;
    const want = Buffer.from(this.sign(`${head}.${body}`));
    const given = Buffer.from(sig);
    if (want.length !== given.length || !timingSafeEqual(want, given)) return undefined;
    let claims: TokenClaims;
    try {
      claims = JSON.parse(Buffer.from(body, 'base64url').toString()) as TokenClaims;
    } catch {
      return undefined;
    }
    if (claims.exp * 1000 <= this.now().getTime()) throw unauthorized();
    const { namespace, serviceaccount } = claims['kubernetes.io'];
    const sa = await this.registry.get('ServiceAccount', namespace, serviceaccount.name);
    if (sa === undefined || (sa.metadata.uid ?? '') !== serviceaccount.uid) throw unauthorized();
    return {
      kind: 'serviceaccount',
      namespace,
      name: serviceaccount.name,
      uid: serviceaccount.uid,
    };
  }

  /** Throws the Kubernetes 403 unless a binding of `u` grants the request. */
  async authorize(u: KubeUser, a: RequestAttributes): Promise<void> {
    if (u.kind === 'admin') return;
    if (await this.allowed(u, a)) return;
    throw forbidden(u, a);
  }

  async allowed(u: KubeUser, a: RequestAttributes): Promise<boolean> {
    const clusterBindings = await this.registry.list('ClusterRoleBinding');
    for (const b of clusterBindings) {
      if (!b.subjects.some((s) => subjectMatches(s, u, undefined))) continue;
      if (await this.roleAllows(b, undefined, a)) return true;
    }
    if (a.namespace === undefined) return false;
    const bindings = await this.registry.list('RoleBinding', a.namespace);
    for (const b of bindings) {
      if (!b.subjects.some((s) => subjectMatches(s, u, a.namespace))) continue;
      if (await this.roleAllows(b, a.namespace, a)) return true;
    }
    return false;
  }

  private async roleAllows(
    b: RoleBinding | ClusterRoleBinding,
    namespace: string | undefined,
    a: RequestAttributes,
  ): Promise<boolean> {
    let role: Role | ClusterRole | undefined;
    if (b.roleRef.kind === 'ClusterRole') {
      role = await this.registry.get('ClusterRole', undefined, b.roleRef.name);
    } else if (namespace !== undefined) {
      role = await this.registry.get('Role', namespace, b.roleRef.name);
    }
    return role?.rules.some((r) => ruleAllows(r, a)) ?? false;
  }

  /** Whether a ServiceAccount may read a non-resource path (discovery, version, health). */
  static discoveryPath(method: string, path: string): boolean {
    return (method === 'GET' || method === 'HEAD') && DISCOVERY.test(path);
  }

  /** `POST …/serviceaccounts/NAME/token`: a TokenRequest answered with a token. */
  tokenSubresource(): SubresourceHandler {
    return {
      resource: 'serviceaccounts',
      name: 'token',
      kind: 'TokenRequest',
      verbs: ['create'],
      handle: (ctx) => this.createToken(ctx),
    };
  }

  private async createToken(ctx: RequestContext): Promise<void> {
    if (ctx.req.method !== 'POST') throw methodNotAllowed();
    const { r, namespace, name = '' } = ctx.target;
    const spec = await readTokenRequestSpec(ctx);
    const seconds =
      typeof spec.expirationSeconds === 'number'
        ? spec.expirationSeconds
        : DEFAULT_EXPIRATION_SECONDS;
    if (!Number.isInteger(seconds) || seconds < MIN_EXPIRATION_SECONDS) {
      throw new ApiError(
        422,
        'Invalid',
        `TokenRequest.authentication.k8s.io ${JSON.stringify(name)} is invalid: spec.expirationSeconds: Invalid value: ${String(seconds)}: may not specify a duration less than 10 minutes`,
        { name, group: 'authentication.k8s.io', kind: 'TokenRequest' },
      );
    }
    const audiences =
      Array.isArray(spec.audiences) && spec.audiences.every((x) => typeof x === 'string')
        ? spec.audiences
        : [ISSUER];
    const sa = await this.registry.get('ServiceAccount', namespace, name);
    if (sa === undefined) throw notFound(r, name);
    if (ctx.url.searchParams.getAll('dryRun').some((v) => v !== 'All')) {
      throw badRequest('dryRun: Unsupported value: supported values: "All"');
    }
    const { token, exp } = this.issue(sa, audiences.length === 0 ? [ISSUER] : audiences, seconds);
    sendJson(ctx.res, 201, {
      kind: 'TokenRequest',
      apiVersion: 'authentication.k8s.io/v1',
      metadata: { name, namespace, creationTimestamp: null },
      spec: { audiences, expirationSeconds: seconds, boundObjectRef: null },
      status: { token, expirationTimestamp: exp.toISOString().replace(/\.\d{3}Z$/, 'Z') },
    });
  }
}

/** The spec of a TokenRequest body: JSON, or the protobuf kubectl sends. */
async function readTokenRequestSpec(ctx: RequestContext): Promise<Record<string, unknown>> {
  const chunks: Buffer[] = [];
  let size = 0;
  for await (const chunk of ctx.req) {
    size += (chunk as Buffer).length;
    if (size > MAX_BODY_BYTES) {
      throw new ApiError(
        413,
        'RequestEntityTooLarge',
        'Request entity too large: limit is 3145728',
      );
    }
    chunks.push(chunk as Buffer);
  }
  const raw = Buffer.concat(chunks);
  const type = (ctx.req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
  if (type === 'application/vnd.kubernetes.protobuf') return tokenRequestSpecFromProto(raw);
  if (raw.toString().trim() === '') return {};
  let body: unknown;
  try {
    body = JSON.parse(raw.toString());
  } catch (err) {
    throw badRequest(
      `couldn't get version/kind; json parse error: ${err instanceof Error ? err.message : String(err)}`,
    );
  }
  return isRecord(body) && isRecord(body.spec) ? body.spec : {};
}

/** Protobuf fields of one message: number → values (varints as numbers, the rest as bytes). */
function protoFields(buf: Buffer): Map<number, (number | Buffer)[]> {
  const out = new Map<number, (number | Buffer)[]>();
  let i = 0;
  const varint = (): number => {
    let v = 0;
    let mul = 1;
    for (;;) {
      const b = buf[i++];
      if (b === undefined) throw badRequest('invalid protobuf body: truncated');
      v += (b & 0x7f) * mul;
      if ((b & 0x80) === 0) return v;
      mul *= 128;
    }
  };
  while (i < buf.length) {
    const tag = varint();
    const field = Math.floor(tag / 8);
    const wire = tag % 8;
    let value: number | Buffer;
    if (wire === 0) value = varint();
    else if (wire === 2) {
      const len = varint();
      value = buf.subarray(i, i + len);
      i += len;
    } else if (wire === 1) {
      value = buf.subarray(i, i + 8);
      i += 8;
    } else if (wire === 5) {
      value = buf.subarray(i, i + 4);
      i += 4;
    } else throw badRequest(`invalid protobuf body: wire type ${wire}`);
    out.set(field, [...(out.get(field) ?? []), value]);
  }
  return out;
}

/**
 * A TokenRequest in Kubernetes' protobuf envelope (`k8s\0`, then runtime.Unknown whose
 * field 2 is the object): spec (2) holds audiences (1, repeated) and expirationSeconds (4).
 */
function tokenRequestSpecFromProto(body: Buffer): Record<string, unknown> {
  const magic = Buffer.from([0x6b, 0x38, 0x73, 0x00]);
  if (!body.subarray(0, 4).equals(magic)) throw badRequest('invalid protobuf body: no k8s prefix');
  const raw = protoFields(body.subarray(4)).get(2)?.[0];
  if (!Buffer.isBuffer(raw)) return {};
  const spec = protoFields(raw).get(2)?.[0];
  if (!Buffer.isBuffer(spec)) return {};
  const f = protoFields(spec);
  const audiences = (f.get(1) ?? [])
    .filter((b): b is Buffer => Buffer.isBuffer(b))
    .map((b) => b.toString());
  const seconds = f.get(4)?.[0];
  return {
    ...(audiences.length > 0 ? { audiences } : {}),
    ...(typeof seconds === 'number' ? { expirationSeconds: seconds } : {}),
  };
}
