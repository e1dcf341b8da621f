import { request as httpRequest } from 'node:http';
import { request as httpsRequest, type RequestOptions } from 'node:https';
import { ListWatch, Watch, type KubeConfig, type KubernetesObject } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { isAborted, sleep } from '../lib/abort.js';
import { Backoff } from '../lib/backoff.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { cacheKey, sameJson } from '../registry/codec.js';
import type { KindInfo } from '../registry/kinds.js';
import type { Informer, InformerHandlers, ObjectEvent, RegistryObject } from '../registry/types.js';
import { formatProblem, validateObject } from '../registry/validation.js';

/** What an informer reports about its API server, for status and metrics. */
export interface KubeInformerObserver {
  /** One list request: its HTTP status (0 when no answer came) and how long it took. */
  onList(resource: string, statusCode: number, seconds: number): void;
  /** One object event: `valid` false when it was rejected. */
  onEvent(resource: string, action: 'create' | 'update' | 'delete', valid: boolean): void;
  /** The list-and-watch failed; it restarts after `retryInMs`. */
  onError(resource: string, err: Error, retryInMs: number): void;
  /** Listed and watching again. */
  onConnected(resource: string): void;
}

export interface KubeInformerOptions {
  readonly namespace?: string | undefined;
  readonly log?: Logger | undefined;
  readonly observer?: KubeInformerObserver | undefined;
}

/** An error of the API server with its HTTP status, as client-node's ListWatch reads it. */
class ApiError extends ClusterMeshError {
  constructor(
    readonly statusCode: number,
    message: string,
  ) {
    super(statusCode === 403 ? ErrorCode.KubeApiForbidden : ErrorCode.KubeApiUnreachable, message);
  }
}

/** `/api/v1/services`, `/apis/cilium.io/v2/namespaces/ns/ciliumendpoints`, … */
export function resourcePath(info: KindInfo, namespace?: string): string {
  const apiVersion = info.apiVersions[0] ?? 'v1';
  const base = info.group === '' ? `/api/${apiVersion}` : `/apis/${apiVersion}`;
  return `${base}${namespace === undefined ? '' : `/namespaces/${namespace}`}/${info.resource}`;
}

/**
 * A GET on the kubeconfig's current API server with its credentials: the status and the
 * body as text. `what` names the request in the timeout's error.
 */
export async function kubeGet(
  kc: KubeConfig,
  path: string,
  timeoutMs: number,
  what: string,
): Promise<{ status: number; text: string }> {
  const server = kc.getCurrentCluster()?.server ?? '';
  const url = new URL(server.replace(/\/$/, '') + path);
  const opts: RequestOptions = { method: 'GET', headers: { Accept: 'application/json' } };
  await kc.applyToHTTPSOptions(opts);
  return new Promise((resolve, reject) => {
    const req = (url.protocol === 'https:' ? httpsRequest : httpRequest)(url, opts, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => {
        resolve({ status: res.statusCode ?? 0, text });
      });
      res.on('error', reject);
    });
    req.setTimeout(timeoutMs, () =>
      req.destroy(new Error(`${what}: no answer in ${String(timeoutMs / 1000)} s`)),
    );
    req.on('error', reject);
    req.end();
  });
}

/**
 * One list request with the kubeconfig's credentials. A list's items carry neither kind
 * nor apiVersion on a real API server: they are filled in from the kind asked for.
 */
async function listObjects(
  kc: KubeConfig,
  info: KindInfo,
  path: string,
): Promise<{ items: KubernetesObject[]; metadata?: { resourceVersion?: string } }> {
  const body = await kubeGet(kc, path, 30_000, `list ${path}`);
  let parsed: unknown;
  try {
    parsed = JSON.parse(body.text);
  } catch {
    throw new ApiError(body.status, `list ${path}: HTTP ${body.status}, not JSON`);
  }
  const doc = parsed as {
    kind?: string;
    message?: string;
    items?: KubernetesObject[];
    metadata?: { resourceVersion?: string };
  };
  if (body.status === 403) {
    // Which permission is missing, first: what an operator adds to the daemon's ClusterRole.
    const group = info.group === '' ? '""' : info.group;
    throw new ApiError(
      403,
      `list ${path}: forbidden: the ServiceAccount lacks RBAC verb "list" on resource "${info.resource}" in API group ${group}: ${doc.message ?? body.text.slice(0, 80)}`,
    );
  }
  if (body.status !== 200) {
    throw new ApiError(
      body.status,
      `list ${path}: HTTP ${body.status}: ${doc.message ?? body.text.slice(0, 80)}`,
    );
  }
  const apiVersion = info.apiVersions[0] ?? 'v1';
  const items = (doc.items ?? []).map((o) => ({
    ...o,
    apiVersion: o.apiVersion ?? apiVersion,
    kind: o.kind ?? info.kind,
  }));
  return { items, metadata: doc.metadata };
}

/**
 * A Kubernetes informer (client-node's ListWatch) behind the registry's Informer contract:
 * objects are validated like registry objects (an invalid one is logged, counted and
 * skipped, the last valid one kept), a failed list or watch restarts with back-off while
 * the cache keeps the last known state, and a 410 Gone re-lists and reports the
 * difference as events.
 */
export class KubeInformer<T extends RegistryObject> implements Informer<T> {
  private readonly cache = new Map<string, T>();
  private readonly log: Logger;
  private readonly path: string;
  private synced = false;
  private running = false;

  constructor(
    private readonly kc: KubeConfig,
    private readonly info: KindInfo,
    private readonly handlers: InformerHandlers<T>,
    private readonly opts: KubeInformerOptions = {},
  ) {
    this.path = resourcePath(info, opts.namespace);
    this.log = (opts.log ?? silentLogger).child({ informer: info.resource, source: 'kubernetes' });
  }

  get hasSynced(): boolean {
    return this.synced;
  }

  list(): readonly T[] {
    return [...this.cache.values()];
  }

  get(namespace: string | undefined, name: string): T | undefined {
    const ns = this.info.namespaced ? (namespace ?? 'default') : undefined;
    return this.cache.get(cacheKey(ns, name));
  }

  async run(signal: AbortSignal): Promise<void> {
    if (this.running) {
      throw new ClusterMeshError(ErrorCode.InvalidArgument, `informer ${this.path} already runs`);
    }
    this.running = true;
    const observer = this.opts.observer;
    const resource = this.info.resource;
    // Set by client-node's callbacks, read by the loop below.
    const st: { failure: Error | undefined; wake: (() => void) | undefined } = {
      failure: undefined,
      wake: undefined,
    };
    // A call, not a property read: TypeScript would keep the narrowing across the awaits.
    const failed = (): Error | undefined => st.failure;
    const lw = new ListWatch<KubernetesObject>(
      this.path,
      new Watch(this.kc),
      async () => {
        const started = performance.now();
        try {
          const list = await listObjects(this.kc, this.info, this.path);
          observer?.onList(resource, 200, (performance.now() - started) / 1000);
          return list;
        } catch (err) {
          const status = err instanceof ApiError ? err.statusCode : 0;
          observer?.onList(resource, status, (performance.now() - started) / 1000);
          throw err;
        }
      },
      false,
    );
    lw.on('add', (o) => {
      this.upsert(o, 'create');
    });
    lw.on('update', (o) => {
      this.upsert(o, 'update');
    });
    lw.on('delete', (o) => {
      this.remove(o);
    });
    lw.on('error', (err: unknown) => {
      st.failure = err instanceof Error ? err : new Error(String(err));
      st.wake?.();
    });
    const backoff = new Backoff({ initialMs: 200, maxMs: 10_000 });
    const stop = (): void => {
      void lw.stop();
      st.wake?.();
    };
    signal.addEventListener('abort', stop, { once: true });
    try {
      while (!signal.aborted) {
        st.failure = undefined;
        await lw.start();
        if (failed() === undefined) {
          backoff.reset();
          observer?.onConnected(resource);
          if (!this.synced) {
            this.synced = true;
            this.call(() => this.handlers.onSynced?.());
          }
          // Watching: client-node re-watches and re-lists (410) by itself; it calls the
          // error handler only when it gives up.
          await new Promise<void>((resolve) => {
            st.wake = resolve;
            if (failed() !== undefined || signal.aborted) resolve();
          });
          st.wake = undefined;
        }
        if (isAborted(signal)) break;
        const delay = backoff.next();
        const err = failed() ?? new Error('watch stopped');
        observer?.onError(resource, err, delay);
        this.log.warn(
          { err: errorMessage(err), retryInMs: delay, kept: this.cache.size },
          'Kubernetes list-and-watch failed; keeping the last known state',
        );
        await lw.stop();
        await sleep(delay, signal).catch(() => undefined);
      }
    } finally {
      signal.removeEventListener('abort', stop);
      await lw.stop();
      this.running = false;
    }
  }

  private keyOf(o: KubernetesObject): string | undefined {
    const name = o.metadata?.name;
    if (name === undefined || name === '') return undefined;
    return cacheKey(this.info.namespaced ? (o.metadata?.namespace ?? 'default') : undefined, name);
  }

  private upsert(raw: KubernetesObject, action: 'create' | 'update'): void {
    const key = this.keyOf(raw);
    const prev = key === undefined ? undefined : this.cache.get(key);
    const r = validateObject({
      ...raw,
      apiVersion: raw.apiVersion ?? this.info.apiVersions[0],
      kind: raw.kind ?? this.info.kind,
    });
    if (key === undefined || !r.ok || r.object.kind !== this.info.kind) {
      this.opts.observer?.onEvent(this.info.resource, action, false);
      this.log.warn(
        {
          name: raw.metadata?.name,
          namespace: raw.metadata?.namespace,
          err: r.ok ? `kind ${r.object.kind}` : formatProblem(r.problem),
          keptPrevious: prev !== undefined,
        },
        'skipping invalid Kubernetes object',
      );
      return;
    }
    this.opts.observer?.onEvent(this.info.resource, prev === undefined ? 'create' : 'update', true);
    const object = r.object as T;
    // A re-list reports every object again: only real changes are events.
    if (prev !== undefined && sameJson(prev, object)) {
      this.cache.set(key, object);
      return;
    }
    this.cache.set(key, object);
    this.emit(
      prev === undefined ? { type: 'added', object } : { type: 'modified', object, old: prev },
    );
  }

  private remove(raw: KubernetesObject): void {
    const key = this.keyOf(raw);
    if (key === undefined) return;
    const prev = this.cache.get(key);
    if (prev === undefined) return;
    this.opts.observer?.onEvent(this.info.resource, 'delete', true);
    this.cache.delete(key);
    this.emit({ type: 'deleted', object: prev });
  }

  private emit(ev: ObjectEvent<T>): void {
    this.call(() => {
      this.handlers.onEvent(ev);
    });
  }

  /** A failing handler must not stop the informer. */
  private call(fn: () => void): void {
    try {
      fn();
    } catch (err) {
      this.log.error({ err: errorMessage(err) }, 'informer handler failed');
    }
  }
}
