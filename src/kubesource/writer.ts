/**
 * Kubernetes mode's write side: what the operator writes back (ServiceImports with their
 * status, derived Services, MCS EndpointSlices, ServiceExport conditions) goes to the API
 * server as a controller's requests would, behind the same ObjectWriter as the registry.
 * Every update carries the resourceVersion it read, so a concurrent writer makes it fail
 * with 409 Conflict: it is then re-read and retried. A delete of an absent object (404) is
 * not an error. An unreachable server fails the call; the operator's work queue retries
 * it with back-off, and `status()` says what failed last.
 */
import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { sleep } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { requireKind, sameJson } from '../registry/codec.js';
import type { KindInfo } from '../registry/kinds.js';
import type { KindName, KindTypes } from '../registry/objects.js';
import type { ApplyResult } from '../registry/registry.js';
import type { ObjectWriter } from '../registry/source.js';
import type { RegistryObject } from '../registry/types.js';
import { parseObject } from '../registry/validation.js';
import { resourcePath } from './informer.js';

/** Attempts of one write when the server keeps answering 409 Conflict. */
const CONFLICT_ATTEMPTS = 8;
/** Objects of one apply written at once. */
const CONCURRENCY = 8;

export interface KubeWriterStatus {
  readonly server: string;
  /** The last write reached the server (any answer but a network failure or a 5xx). */
  readonly ok: boolean;
  readonly writes: number;
  readonly conflicts: number;
  readonly failures: number;
  readonly lastError?: string | undefined;
  readonly lastErrorAt?: string | undefined;
}

export interface KubeObjectWriter extends ObjectWriter {
  status(): KubeWriterStatus;
}

/** One request's method, HTTP status (0: no answer) and duration, for Cilium's client metrics. */
export type KubeCallObserver = (method: string, statusCode: number, seconds: number) => void;

/** An answer of the API server other than 2xx. */
export class KubeWriteError extends ClusterMeshError {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(statusCode === 403 ? ErrorCode.KubeApiForbidden : ErrorCode.KubeApiUnreachable, message);
  }
}

interface Answer {
  readonly status: number;
  readonly body: unknown;
}

function cut(s: string, n = 120): string {
  return s.length > n ? `${s.slice(0, n - 1)}…` : s;
}

export function kubeWriter(
  kc: KubeConfig,
  opts: { readonly log: Logger; readonly onCall?: KubeCallObserver | undefined },
): KubeObjectWriter {
  const server = (kc.getCurrentCluster()?.server ?? '').replace(/\/$/, '');
  const log = opts.log.child({ source: 'kubernetes', component: 'kube-writer' });
  const st = {
    ok: true,
    writes: 0,
    conflicts: 0,
    failures: 0,
    lastError: undefined as string | undefined,
    lastErrorAt: undefined as string | undefined,
  };

  const send = async (method: string, path: string, body?: unknown): Promise<Answer> => {
    const url = new URL(server + path);
    const text = body === undefined ? undefined : JSON.stringify(body);
    const ro: RequestOptions = {
      method,
      headers: {
        Accept: 'application/json',
        ...(text === undefined
          ? {}
          : { 'Content-Type': 'application/json', 'Content-Length': Buffer.byteLength(text) }),
      },
    };
    await kc.applyToHTTPSOptions(ro);
    const started = performance.now();
    let answer: { status: number; text: string };
    try {
      answer = await new Promise((resolve, reject) => {
        const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, ro, (res) => {
          let data = '';
          res.setEncoding('utf8');
          res.on('data', (c: string) => (data += c));
          res.on('end', () => {
            resolve({ status: res.statusCode ?? 0, text: data });
          });
          res.on('error', reject);
        });
        req.setTimeout(30_000, () => req.destroy(new Error('no answer in 30 s')));
        req.on('error', reject);
        req.end(text);
      });
    } catch (err) {
      opts.onCall?.(method, 0, (performance.now() - started) / 1000);
      const e = new KubeWriteError(0, `${method} ${path}: ${errorMessage(err)}`);
      fail(e);
      throw e;
    }
    opts.onCall?.(method, answer.status, (performance.now() - started) / 1000);
    let parsed: unknown;
    try {
      parsed = answer.text === '' ? undefined : JSON.parse(answer.text);
    } catch {
      parsed = undefined;
    }
    if (answer.status >= 500) {
      fail(new KubeWriteError(answer.status, `${method} ${path}: HTTP ${answer.status}`));
    } else {
      st.ok = true;
    }
    return { status: answer.status, body: parsed };
  };

  const fail = (err: Error): void => {
    st.ok = false;
    st.failures++;
    st.lastError = errorMessage(err);
    st.lastErrorAt = new Date().toISOString();
  };

  const refuse = (method: string, path: string, a: Answer): KubeWriteError => {
    const msg = (a.body as { message?: unknown } | undefined)?.message;
    const e = new KubeWriteError(
      a.status,
      `${method} ${path}: HTTP ${a.status}${typeof msg === 'string' ? `: ${cut(msg)}` : ''}`,
    );
    if (a.status < 500) {
      st.failures++;
      st.lastError = e.message;
      st.lastErrorAt = new Date().toISOString();
    }
    return e;
  };

  const objectPath = (info: KindInfo, namespace: string | undefined, name: string): string =>
    `${resourcePath(info, info.namespaced ? (namespace ?? 'default') : undefined)}/${encodeURIComponent(name)}`;

  /** The object, or undefined on 404. */
  const read = async (
    info: KindInfo,
    namespace: string | undefined,
    name: string,
  ): Promise<RegistryObject | undefined> => {
    const path = objectPath(info, namespace, name);
    const a = await send('GET', path);
    if (a.status === 404) return undefined;
    if (a.status !== 200) throw refuse('GET', path, a);
    return withKind(info, a.body as RegistryObject);
  };

  /** PUT of the main resource or /status; undefined on 409 (the caller re-reads). */
  const put = async (
    info: KindInfo,
    obj: RegistryObject,
    sub: '' | '/status',
  ): Promise<RegistryObject | undefined> => {
    const path = objectPath(info, obj.metadata.namespace, obj.metadata.name) + sub;
    const a = await send('PUT', path, obj);
    if (a.status === 409) {
      st.conflicts++;
      return undefined;
    }
    if (a.status !== 200 && a.status !== 201) throw refuse('PUT', path, a);
    st.writes++;
    return withKind(info, a.body as RegistryObject);
  };

  /** Brings the status in line when `want` has one the stored object lacks. */
  const writeStatus = async (
    info: KindInfo,
    stored: RegistryObject,
    want: unknown,
  ): Promise<RegistryObject | undefined> => {
    if (want === undefined || sameJson(want, stored.status)) return stored;
    const next = await put(info, { ...stored, status: want }, '/status');
    if (next === undefined) return undefined;
    if (!sameJson(want, next.status)) {
      // A server without a status subresource for the kind takes the status in the main PUT.
      return put(info, { ...next, status: want }, '');
    }
    return next;
  };

  const applyOne = async (input: RegistryObject): Promise<ApplyResult> => {
    const { info, object } = parseObject(input);
    const { namespace, name } = object.metadata;
    for (let attempt = 1; ; attempt++) {
      const cur = await read(info, namespace, name);
      let stored: RegistryObject | undefined;
      let action: ApplyResult['action'];
      if (cur === undefined) {
        const path = resourcePath(info, info.namespaced ? (namespace ?? 'default') : undefined);
        const a = await send('POST', path, object);
        if (a.status === 409) {
          // Created meanwhile: update it instead.
          st.conflicts++;
          stored = undefined;
        } else if (a.status !== 201 && a.status !== 200) {
          throw refuse('POST', path, a);
        } else {
          st.writes++;
          stored = withKind(info, a.body as RegistryObject);
        }
        action = 'created';
      } else {
        const next = forUpdate(object, cur);
        if (covers(next, cur)) {
          stored = cur;
          action = 'unchanged';
        } else {
          stored = await put(info, next, '');
          action = 'configured';
        }
      }
      if (stored !== undefined) stored = await writeStatus(info, stored, object.status);
      if (stored !== undefined) {
        if (action === 'unchanged' && stored !== cur) action = 'configured';
        return { info, object: stored, action };
      }
      if (attempt >= CONFLICT_ATTEMPTS) {
        throw new KubeWriteError(
          409,
          `${info.resource} ${namespace === undefined ? '' : `${namespace}/`}${name}: still conflicting after ${attempt} attempts`,
        );
      }
      await sleep(Math.min(200, 10 * 2 ** attempt) * Math.random());
    }
  };

  const patch = async (
    kind: KindName,
    namespace: string | undefined,
    name: string,
    fn: (cur: RegistryObject) => RegistryObject | undefined,
  ): Promise<RegistryObject | undefined> => {
    const info = requireKind(kind);
    for (let attempt = 1; ; attempt++) {
      const cur = await read(info, namespace, name);
      if (cur === undefined) return undefined;
      const next = fn(structuredClone(cur));
      if (next === undefined) return cur;
      let stored: RegistryObject | undefined = cur;
      const rv = cur.metadata.resourceVersion;
      if (!sameJson(withoutStatus(next), withoutStatus(cur))) {
        stored = await put(
          info,
          { ...next, metadata: { ...next.metadata, resourceVersion: rv } },
          '',
        );
      }
      if (stored !== undefined && next.status !== undefined) {
        stored = await writeStatus(info, stored, next.status);
      }
      if (stored !== undefined) return stored;
      if (attempt >= CONFLICT_ATTEMPTS) {
        throw new KubeWriteError(
          409,
          `${info.resource} ${name}: still conflicting after ${attempt} attempts`,
        );
      }
      await sleep(Math.min(200, 10 * 2 ** attempt) * Math.random());
    }
  };

  log.info({ server }, 'Kubernetes mode: writing objects through the API server');
  return {
    mode: 'kubernetes',
    apply: async (objects) => {
      const results: ApplyResult[] = new Array<ApplyResult>(objects.length);
      let next = 0;
      const worker = async (): Promise<void> => {
        while (next < objects.length) {
          const i = next++;
          const o = objects[i];
          if (o !== undefined) results[i] = await applyOne(o);
        }
      };
      await Promise.all(Array.from({ length: Math.min(CONCURRENCY, objects.length) }, worker));
      return results;
    },
    delete: async (kind, namespace, name) => {
      const info = requireKind(kind);
      const path = objectPath(info, namespace, name);
      const a = await send('DELETE', path);
      if (a.status === 404) return false;
      if (a.status !== 200 && a.status !== 202) throw refuse('DELETE', path, a);
      st.writes++;
      return true;
    },
    // The registry's kinds decode to KindTypes[K]; the API server's objects are the same shapes.
    patch: patch as <K extends KindName>(
      kind: K,
      namespace: string | undefined,
      name: string,
      fn: (current: KindTypes[K]) => KindTypes[K] | undefined,
    ) => Promise<KindTypes[K] | undefined>,
    status: () => ({ server, ...st }),
  };
}

/** A real API server's answers carry no kind on some paths; the kind asked for fills it in. */
function withKind(info: KindInfo, o: RegistryObject): RegistryObject {
  const raw = o as Partial<RegistryObject>;
  return {
    ...o,
    apiVersion: raw.apiVersion ?? info.apiVersions[0] ?? 'v1',
    kind: raw.kind ?? info.kind,
  };
}

function withoutStatus(o: RegistryObject): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...o };
  delete rest.status;
  return rest;
}

/**
 * The update of `cur` to `want`: the server's fields (uid, resourceVersion for the
 * compare-and-swap, creationTimestamp) kept, and a Service's allocated ClusterIP kept when
 * `want` names none, as `kubectl apply` leaves it.
 */
function forUpdate(want: RegistryObject, cur: RegistryObject): RegistryObject {
  const next: Record<string, unknown> = { ...want };
  delete next.status;
  if (want.kind === 'Service') {
    const spec = (want.spec ?? {}) as Record<string, unknown>;
    const old = (cur.spec ?? {}) as Record<string, unknown>;
    if (
      (spec.clusterIP === undefined || spec.clusterIP === '') &&
      typeof old.clusterIP === 'string'
    ) {
      next.spec = {
        ...spec,
        clusterIP: old.clusterIP,
        clusterIPs: old.clusterIPs ?? [old.clusterIP],
      };
    }
  }
  return {
    ...(next as RegistryObject),
    metadata: {
      ...want.metadata,
      uid: cur.metadata.uid,
      resourceVersion: cur.metadata.resourceVersion,
      creationTimestamp: cur.metadata.creationTimestamp,
    },
  };
}

/**
 * Whether the stored object already is `want` on what `want` says: labels and annotations
 * exactly (a removed label is a change), everything else as a subset, since the server
 * fills in defaults the writer never names.
 */
function covers(want: RegistryObject, cur: RegistryObject): boolean {
  if (!sameJson(want.metadata.labels ?? {}, cur.metadata.labels ?? {})) return false;
  if (!sameJson(want.metadata.annotations ?? {}, cur.metadata.annotations ?? {})) return false;
  if (!subset(want.metadata.ownerReferences ?? [], cur.metadata.ownerReferences ?? [])) {
    return false;
  }
  const w = want as unknown as Record<string, unknown>;
  const c = cur as unknown as Record<string, unknown>;
  for (const k of Object.keys(w)) {
    if (k === 'metadata' || k === 'status' || w[k] === undefined) continue;
    if (!subset(w[k], c[k])) return false;
  }
  return true;
}

function subset(want: unknown, have: unknown): boolean {
  if (want === have) return true;
  if (typeof want !== 'object' || want === null) return want === have;
  if (typeof have !== 'object' || have === null) return false;
  if (Array.isArray(want)) {
    return (
      Array.isArray(have) &&
      want.length === have.length &&
      want.every((v, i) => subset(v, (have as unknown[])[i]))
    );
  }
  const h = have as Record<string, unknown>;
  return Object.entries(want as Record<string, unknown>).every(
    ([k, v]) => v === undefined || subset(v, h[k]),
  );
}
