import { randomUUID } from 'node:crypto';
import type { Logger } from 'pino';
import { MAX_TXN_OPS, type Backend, type KeyValue, type TxnOp } from '../kvstore/backend.js';
import { rfc3339Now } from '../keyspace/index.js';
import { sleep } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import {
  decodeStored,
  describeObject,
  encodeStored,
  keyOf,
  normalize,
  objectKey,
  requireKind,
  resourcePrefix,
  sameJson,
} from './codec.js';
import type { KindInfo } from './kinds.js';
import { parseObject } from './validation.js';
import type { KindName, KindTypes } from './objects.js';
import type { RegistryObject } from './types.js';

/**
 * The local cluster registry: create, update, apply, get, list, delete and patch of
 * Kubernetes-shaped objects stored in a kvstore (layout in codec.ts).
 *
 * Optimistic concurrency: an update reads the key, checks the caller's
 * `metadata.resourceVersion` against its mod revision, and writes with a
 * compare-and-swap on that revision (`Backend.txnIf`), so a concurrent writer in any
 * process makes it fail with ERR_CONFLICT instead of being overwritten (`patch`
 * retries). Creates are exact (`createOnly`). `apply` is last-writer-wins, like
 * `kubectl apply`.
 */

export type ApplyAction = 'created' | 'configured' | 'unchanged';

export interface ApplyResult {
  readonly info: KindInfo;
  /** The object as stored (without resourceVersion: a txn does not report revisions). */
  readonly object: RegistryObject;
  readonly action: ApplyAction;
}

/** What an apply did to one object, as the CLI and the local mesh's control API report it. */
export interface ApplyOutcome {
  readonly kind: string;
  readonly namespace?: string | undefined;
  readonly name: string;
  readonly action: ApplyAction;
}

export function applyOutcome(r: ApplyResult): ApplyOutcome {
  return {
    kind: r.info.kind,
    namespace: r.object.metadata.namespace,
    name: r.object.metadata.name,
    action: r.action,
  };
}

/** `service/rebel-base created`: kubectl's wording. */
export function resultLine(info: KindInfo, name: string, action: string): string {
  return `${info.singular}/${name} ${action}`;
}

export interface RegistryOptions {
  readonly log?: Logger | undefined;
  /** Clock for creationTimestamp (tests). */
  readonly now?: (() => Date) | undefined;
  /** Attempts of `patch` before it gives up with ERR_CONFLICT (default 16). */
  readonly patchAttempts?: number | undefined;
}

/** Keys per page of `listWithRevision` (etcd answers pages of this size well under 4 MiB). */
const LIST_PAGE_SIZE = 1000;

/** Concurrent reads while applying many objects: enough to hide latency, not to flood. */
const READ_CONCURRENCY = 32;

export class Registry {
  private readonly log: Logger;
  private readonly now: () => Date;
  private readonly patchAttempts: number;
  /** Decoded objects of `listWithRevision`, by key (objects are never mutated by readers). */
  private readonly decoded = new Map<
    string,
    { modRevision: number; value: string; object: RegistryObject }
  >();

  constructor(
    readonly backend: Backend,
    opts: RegistryOptions = {},
  ) {
    this.log = opts.log ?? silentLogger;
    this.now = opts.now ?? (() => new Date());
    this.patchAttempts = opts.patchAttempts ?? 16;
  }

  /**
   * Create-or-update of each object, `kubectl apply` style: an update keeps uid,
   * creationTimestamp and (when the input has none) status; an object equal to the stored
   * one is not written. Everything is validated before anything is written; writes go out
   * in transactions of at most 128 objects, so a batch that large is applied atomically.
   * An object given twice is applied in order (the second sees the first).
   */
  async apply(objects: readonly RegistryObject[]): Promise<ApplyResult[]> {
    const parsed = objects.map((o) => {
      const { info, object } = parseObject(o);
      return { info, object, key: keyOf(info, object) };
    });
    const keys = [...new Set(parsed.map((p) => p.key))];
    return withKeyLocks(keys, async () => {
      const current = await this.readAll(parsed);
      const pending = new Map<string, RegistryObject>();
      const results: ApplyResult[] = [];
      for (const { info, object, key } of parsed) {
        const cur = current.get(key);
        let action: ApplyAction;
        let next: RegistryObject;
        if (cur === undefined) {
          action = 'created';
          next = this.initServerFields(object);
        } else {
          next = merge(object, cur);
          action = sameJson(normalize(next), normalize(cur)) ? 'unchanged' : 'configured';
        }
        current.set(key, next);
        if (action !== 'unchanged') pending.set(key, next);
        results.push({ info, object: normalize(next), action });
      }
      const ops: TxnOp[] = [...pending].map(([key, obj]) => ({
        kind: 'put',
        key,
        value: encodeStored(obj),
      }));
      for (let i = 0; i < ops.length; i += MAX_TXN_OPS) {
        await this.backend.txn(ops.slice(i, i + MAX_TXN_OPS));
      }
      return results;
    });
  }

  /** Creates an object; ERR_CONFLICT when it exists. Returns it as stored. */
  async create<T extends RegistryObject>(obj: T): Promise<T> {
    const { info, object } = parseObject(obj);
    const key = keyOf(info, object);
    const next = this.initServerFields(object);
    if (!(await this.backend.createOnly(key, encodeStored(next)))) {
      throw new ClusterMeshError(
        ErrorCode.Conflict,
        `${describeObject(info, object.metadata.name)} already exists`,
      );
    }
    return (await this.readBack(info, key, next)) as T;
  }

  /**
   * Replaces an object, keeping uid and creationTimestamp (and status when `obj` has none).
   * With `metadata.resourceVersion` set, fails with ERR_CONFLICT unless it is still the
   * stored one (see the module comment for the guarantee). ERR_KEY_NOT_FOUND when missing.
   */
  async update<T extends RegistryObject>(obj: T): Promise<T> {
    const { info, object } = parseObject(obj);
    const key = keyOf(info, object);
    return withKeyLocks([key], async () => {
      const kv = await this.backend.get(key);
      const name = object.metadata.name;
      if (kv === undefined) {
        throw new ClusterMeshError(
          ErrorCode.KeyNotFound,
          `${describeObject(info, name)} not found`,
        );
      }
      const expected = obj.metadata.resourceVersion;
      if (expected !== undefined && expected !== '' && expected !== String(kv.modRevision)) {
        throw new ClusterMeshError(
          ErrorCode.Conflict,
          `Operation cannot be fulfilled on ${describeObject(info, name)}: the object has been ` +
            'modified; please apply your changes to the latest version and try again',
        );
      }
      let cur: RegistryObject | undefined;
      try {
        cur = decodeStored(info, kv);
      } catch (err) {
        // An unreadable value must not block its repair by the object's owner.
        this.log.warn({ key, err: errorMessage(err) }, 'replacing invalid registry entry');
      }
      const next = cur === undefined ? this.initServerFields(object) : merge(object, cur);
      if (cur !== undefined && sameJson(normalize(next), normalize(cur))) return cur as T;
      const written = await this.backend.txnIf(
        [{ key, modRevision: kv.modRevision }],
        [{ kind: 'put', key, value: encodeStored(next) }],
      );
      if (!written) {
        throw new ClusterMeshError(
          ErrorCode.Conflict,
          `Operation cannot be fulfilled on ${describeObject(info, name)}: the object has been ` +
            'modified; please apply your changes to the latest version and try again',
        );
      }
      return (await this.readBack(info, key, next)) as T;
    });
  }

  get<K extends KindName>(
    kind: K,
    namespace: string | undefined,
    name: string,
  ): Promise<KindTypes[K] | undefined>;
  get<T extends RegistryObject>(
    kind: string | KindInfo,
    namespace: string | undefined,
    name: string,
  ): Promise<T | undefined>;
  /** The object, or `undefined`; ERR_INVALID_ENTRY when its stored value is invalid. */
  async get(
    kind: string | KindInfo,
    namespace: string | undefined,
    name: string,
  ): Promise<RegistryObject | undefined> {
    const info = requireKind(kind);
    const kv = await this.backend.get(objectKey(info, namespace, name));
    return kv === undefined ? undefined : decodeStored(info, kv);
  }

  list<K extends KindName>(kind: K, namespace?: string): Promise<KindTypes[K][]>;
  list<T extends RegistryObject>(kind: string | KindInfo, namespace?: string): Promise<T[]>;
  /** Objects in key order (namespace, then name); invalid stored values are logged and skipped. */
  async list(kind: string | KindInfo, namespace?: string): Promise<RegistryObject[]> {
    const info = requireKind(kind);
    const { kvs } = await this.backend.list(resourcePrefix(info, namespace));
    const out: RegistryObject[] = [];
    for (const kv of kvs) {
      try {
        out.push(decodeStored(info, kv));
      } catch (err) {
        this.log.warn({ key: kv.key, err: errorMessage(err) }, 'skipping invalid registry entry');
      }
    }
    return out;
  }

  /**
   * Objects in key order with the store revision they were read at: what a Kubernetes list
   * reports as its resourceVersion, from which a watch resumes. Values unchanged since the
   * last call are not decoded again (a list of thousands of pods stays cheap).
   */
  async listWithRevision(
    kind: string | KindInfo,
    namespace?: string,
  ): Promise<{ items: RegistryObject[]; revision: number }> {
    const info = requireKind(kind);
    const kvs: KeyValue[] = [];
    let revision: number | undefined;
    let startAfter: string | undefined;
    // Large pages at one revision: a list of thousands of objects costs few round trips.
    for (;;) {
      const page = await this.backend.listPage(resourcePrefix(info, namespace), {
        startAfter,
        revision,
        limit: LIST_PAGE_SIZE,
      });
      revision ??= page.revision;
      kvs.push(...page.kvs);
      const last = page.kvs[page.kvs.length - 1];
      if (!page.more || last === undefined) break;
      startAfter = last.key;
    }
    const items: RegistryObject[] = [];
    for (const kv of kvs) {
      const memo = this.decoded.get(kv.key);
      if (memo !== undefined && memo.modRevision === kv.modRevision && memo.value === kv.value) {
        items.push(memo.object);
        continue;
      }
      try {
        const object = decodeStored(info, kv);
        this.decoded.set(kv.key, { modRevision: kv.modRevision, value: kv.value, object });
        items.push(object);
      } catch (err) {
        this.log.warn({ key: kv.key, err: errorMessage(err) }, 'skipping invalid registry entry');
      }
    }
    if (namespace === undefined || !info.namespaced) {
      // Forget deleted objects of the kind, so the memo holds what the store holds.
      const prefix = resourcePrefix(info);
      const live = new Set(kvs.map((kv) => kv.key));
      for (const key of this.decoded.keys()) {
        if (key.startsWith(prefix) && !live.has(key)) this.decoded.delete(key);
      }
    }
    return { items, revision };
  }

  /** Returns whether the object existed. */
  async delete(
    kind: string | KindInfo,
    namespace: string | undefined,
    name: string,
  ): Promise<boolean> {
    const info = requireKind(kind);
    const key = objectKey(info, namespace, name);
    return withKeyLocks([key], () => this.backend.delete(key));
  }

  patch<K extends KindName>(
    kind: K,
    namespace: string | undefined,
    name: string,
    fn: (current: KindTypes[K]) => KindTypes[K] | undefined,
  ): Promise<KindTypes[K] | undefined>;
  patch<T extends RegistryObject>(
    kind: string | KindInfo,
    namespace: string | undefined,
    name: string,
    fn: (current: T) => T | undefined,
  ): Promise<T | undefined>;
  /**
   * Read-modify-write with retries on conflict, for daemons writing status. `fn` gets a
   * copy it may modify and returns the new object, or `undefined` for "no change". Resolves
   * to the stored object, or `undefined` when the object does not exist.
   */
  async patch(
    kind: string | KindInfo,
    namespace: string | undefined,
    name: string,
    fn: (current: RegistryObject) => RegistryObject | undefined,
  ): Promise<RegistryObject | undefined> {
    const info = requireKind(kind);
    for (let attempt = 1; ; attempt++) {
      const cur = await this.get(info, namespace, name);
      if (cur === undefined) return undefined;
      const next = fn(structuredClone(cur));
      if (next === undefined) return cur;
      try {
        return await this.update({
          ...next,
          metadata: { ...next.metadata, resourceVersion: cur.metadata.resourceVersion },
        });
      } catch (err) {
        if (!isClusterMeshError(err, ErrorCode.Conflict) || attempt >= this.patchAttempts) {
          throw err;
        }
        // Deleted meanwhile: the next read says so.
        await sleep(Math.min(100, 2 ** attempt) * Math.random());
      }
    }
  }

  private initServerFields(obj: RegistryObject): RegistryObject {
    return {
      ...obj,
      metadata: {
        ...obj.metadata,
        uid: randomUUID(),
        generation: 1,
        creationTimestamp: rfc3339Now(this.now()),
      },
    };
  }

  /** The stored object with its resourceVersion, or `fallback` if it vanished meanwhile. */
  private async readBack(
    info: KindInfo,
    key: string,
    fallback: RegistryObject,
  ): Promise<RegistryObject> {
    const kv = await this.backend.get(key);
    return kv === undefined ? normalize(fallback) : decodeStored(info, kv);
  }

  private async readAll(
    parsed: readonly { info: KindInfo; key: string }[],
  ): Promise<Map<string, RegistryObject>> {
    const byKey = new Map(parsed.map((p) => [p.key, p.info]));
    const entries = [...byKey];
    const out = new Map<string, RegistryObject>();
    for (let i = 0; i < entries.length; i += READ_CONCURRENCY) {
      await Promise.all(
        entries.slice(i, i + READ_CONCURRENCY).map(async ([key, info]) => {
          const kv = await this.backend.get(key);
          if (kv === undefined) return;
          try {
            out.set(key, decodeStored(info, kv));
          } catch (err) {
            // Overwriting an unreadable value is how a user repairs it.
            this.log.warn({ key, err: errorMessage(err) }, 'replacing invalid registry entry');
          }
        }),
      );
    }
    return out;
  }
}

/**
 * `next` with the server-owned fields of `cur`: uid and creationTimestamp always, status
 * when `next` has none (status belongs to the daemons that write it), and a generation that
 * counts changes outside metadata and status, as Kubernetes does.
 */
function merge(next: RegistryObject, cur: RegistryObject): RegistryObject {
  const merged: Record<string, unknown> = { ...next };
  if (next.status === undefined && cur.status !== undefined) merged.status = cur.status;
  const allocated = keptAllocation(next, cur);
  if (allocated !== undefined) merged.spec = allocated;
  const specChanged = !sameJson(
    withoutMetaAndStatus(merged as RegistryObject),
    withoutMetaAndStatus(cur),
  );
  const generation = (cur.metadata.generation ?? 1) + (specChanged ? 1 : 0);
  return {
    ...(merged as RegistryObject),
    metadata: {
      ...next.metadata,
      uid: cur.metadata.uid,
      creationTimestamp: cur.metadata.creationTimestamp,
      generation,
    },
  };
}

/**
 * A Service's ClusterIP is allocated by the cluster, not written by the user: re-applying a
 * manifest without one keeps it (as `kubectl apply` does), so the service never flaps to
 * "no address" between the apply and the allocator putting the same IP back.
 */
function keptAllocation(next: RegistryObject, cur: RegistryObject): unknown {
  if (next.kind !== 'Service' || cur.kind !== 'Service') return undefined;
  const spec = next.spec as Record<string, unknown> | undefined;
  const old = cur.spec as Record<string, unknown> | undefined;
  if (spec === undefined || old === undefined) return undefined;
  const given = spec.clusterIP;
  if ((given !== undefined && given !== '') || typeof old.clusterIP !== 'string') return undefined;
  if (old.clusterIP === '' || old.clusterIP === 'None') return undefined;
  return { ...spec, clusterIP: old.clusterIP, clusterIPs: old.clusterIPs ?? [old.clusterIP] };
}

function withoutMetaAndStatus(obj: RegistryObject): Record<string, unknown> {
  const rest: Record<string, unknown> = { ...obj };
  delete rest.metadata;
  delete rest.status;
  return rest;
}

// ---- per-key serialisation of this process's writers ----

const keyTails = new Map<string, Promise<void>>();

async function withKeyLocks<T>(keys: readonly string[], fn: () => Promise<T>): Promise<T> {
  // Sorted, so that two multi-key writers cannot wait on each other.
  const releases: (() => void)[] = [];
  try {
    for (const key of [...keys].sort()) releases.push(await lockKey(key));
    return await fn();
  } finally {
    for (const release of releases) release();
  }
}

async function lockKey(key: string): Promise<() => void> {
  const prev = keyTails.get(key) ?? Promise.resolve();
  let release!: () => void;
  const held = new Promise<void>((resolve) => {
    release = resolve;
  });
  const tail = prev.then(() => held);
  keyTails.set(key, tail);
  await prev;
  return () => {
    release();
    if (keyTails.get(key) === tail) keyTails.delete(key);
  };
}
