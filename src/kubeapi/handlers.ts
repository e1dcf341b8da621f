import type { IncomingMessage, ServerResponse } from 'node:http';
import type { Duplex } from 'node:stream';
import fastJsonPatch from 'fast-json-patch';
import type { Logger } from 'pino';
import { ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { resourcePrefix } from '../registry/codec.js';
import { formatLabelSelector } from '../registry/printers.js';
import type { Registry } from '../registry/registry.js';
import { isRecord } from '../registry/validation.js';
import type { RegistryObject } from '../registry/types.js';
import { readBody, readJson, sendJson } from './http.js';
import { inVersion, parseFieldValidation, validateFor } from './objects.js';
import { hasStatusSubresource, type ApiResource } from './resources.js';
import {
  matchesFilter,
  parseFieldSelector,
  parseLabelSelector,
  type ObjectFilter,
} from './selectors.js';
import { jsonMergePatch, patchSchemaOf, strategicMergePatch, type Json } from './smp.js';
import {
  alreadyExists,
  ApiError,
  badRequest,
  conflict,
  expired,
  internalError,
  invalid,
  methodNotAllowed,
  notFound,
  unsupportedMediaType,
} from './status.js';
import { partialMetadata, tableCells, tableRow, timedCells, toTable } from './tables.js';
import {
  type CacheEvent,
  type KindWatchCache,
  type WatchCaches,
  type WatchEventType,
} from './watch-cache.js';
import { wantsTable } from './discovery.js';

/** What a request addresses once the router resolved its path. */
export interface Target {
  readonly r: ApiResource;
  /** From the URL; undefined for cluster-scoped kinds and all-namespace lists. */
  readonly namespace?: string | undefined;
  readonly name?: string | undefined;
  readonly subresource?: string | undefined;
}

export interface RequestContext {
  readonly req: IncomingMessage;
  readonly res: ServerResponse;
  readonly url: URL;
  readonly target: Target;
}

/** A subresource served by another domain (phase 2: pods' `log` and `exec`). */
export interface SubresourceHandler {
  readonly resource: string;
  readonly name: string;
  readonly kind: string;
  readonly verbs: readonly string[];
  handle(ctx: RequestContext): Promise<void>;
  /** An authenticated Upgrade request (WebSocket exec): the socket is the handler's. */
  upgrade?(ctx: UpgradeContext): void;
}

export interface UpgradeContext {
  readonly req: IncomingMessage;
  readonly socket: Duplex;
  readonly head: Buffer;
  readonly url: URL;
  readonly target: Target;
}

const PATCH_TYPES = {
  strategic: 'application/strategic-merge-patch+json',
  merge: 'application/merge-patch+json',
  json: 'application/json-patch+json',
} as const;

/** Attempts of a PATCH without a resourceVersion precondition against concurrent writers. */
const PATCH_ATTEMPTS = 5;
/** A watch whose client stops reading is dropped once this much output is queued. */
const MAX_WATCH_BACKLOG = 16 * 1024 * 1024;

export interface HandlerDeps {
  readonly registry: Registry;
  readonly caches: WatchCaches;
  readonly log: Logger;
  readonly now?: () => Date;
}

/** CRUD, list, watch, patch, `/status` and `/scale` of the registry's kinds. */
export class ResourceHandlers {
  private readonly now: () => Date;
  private readonly watches = new Set<() => void>();

  constructor(private readonly deps: HandlerDeps) {
    this.now = deps.now ?? (() => new Date());
  }

  /** Ends every open watch (server shutdown). */
  closeWatches(): void {
    for (const close of [...this.watches]) close();
  }

  get openWatches(): number {
    return this.watches.size;
  }

  async handle(ctx: RequestContext): Promise<void> {
    const { req, target } = ctx;
    const method = req.method ?? 'GET';
    const sub = target.subresource;
    if (sub === 'status' && target.r.subresources.some((s) => s.name === 'status')) {
      if (target.name === undefined) throw methodNotAllowed();
      if (method === 'GET') return this.get(ctx);
      if (method === 'PATCH') return this.patch(ctx, 'status');
      if (method === 'PUT') return this.update(ctx, 'status');
      throw methodNotAllowed();
    }
    if (sub === 'scale' && target.r.kind === 'Deployment') {
      if (method === 'GET') return this.getScale(ctx);
      if (method === 'PUT' || method === 'PATCH') return this.writeScale(ctx, method);
      throw methodNotAllowed();
    }
    if (sub !== undefined) throw notFoundPage();
    if (target.name === undefined) {
      if (method === 'GET') return this.list(ctx);
      if (method === 'POST') return this.create(ctx);
      throw methodNotAllowed();
    }
    if (method === 'GET') return this.get(ctx);
    if (method === 'PUT') return this.update(ctx, 'main');
    if (method === 'PATCH') return this.patch(ctx, 'main');
    if (method === 'DELETE') return this.delete(ctx);
    throw methodNotAllowed();
  }

  // ---- reads ----

  private async current(t: Target): Promise<RegistryObject> {
    const name = t.name ?? '';
    let obj: RegistryObject | undefined;
    try {
      obj = await this.deps.registry.get(t.r.info, t.namespace, name);
    } catch (err) {
      throw internalError(errorMessage(err));
    }
    if (obj === undefined) throw notFound(t.r, name);
    return obj;
  }

  private async get(ctx: RequestContext): Promise<void> {
    const { r } = ctx.target;
    const obj = inVersion(r, await this.current(ctx.target));
    if (wantsTable(ctx.req.headers.accept ?? '')) {
      sendJson(
        ctx.res,
        200,
        toTable(r.kind, [obj], obj.metadata.resourceVersion, { now: this.now() }),
      );
      return;
    }
    sendJson(ctx.res, 200, obj);
  }

  private filterOf(ctx: RequestContext): ObjectFilter {
    const q = ctx.url.searchParams;
    return {
      namespace: ctx.target.r.namespaced ? ctx.target.namespace : undefined,
      labels: parseLabelSelector(q.get('labelSelector') ?? ''),
      fields: parseFieldSelector(q.get('fieldSelector') ?? '', ctx.target.r.kind),
    };
  }

  private async list(ctx: RequestContext): Promise<void> {
    const q = ctx.url.searchParams;
    if (isTrue(q.get('watch'))) return this.watch(ctx);
    const { r } = ctx.target;
    const filter = this.filterOf(ctx);
    const rv = q.get('resourceVersion') ?? '';
    const cache = this.deps.caches.of(r.kind);
    let items: readonly RegistryObject[];
    let revision: number;
    const wanted = rv === '' ? NaN : Number(rv);
    if (rv !== '' && !Number.isInteger(wanted)) {
      throw badRequest(`invalid resource version: ${JSON.stringify(rv.slice(0, 40))}`);
    }
    if (cache?.ready === true && rv !== '' && cache.revision >= wanted) {
      // "Not older than": the watch cache is as recent as asked for.
      items = cache.sortedSnapshot();
      revision = cache.revision;
    } else if (cache?.ready === true && (await this.cacheIsCurrent(r, cache))) {
      // A consistent list the cache can answer: it has applied every change up to the
      // store's current revision.
      items = cache.sortedSnapshot();
      revision = cache.revision;
    } else {
      try {
        ({ items, revision } = await this.deps.registry.listWithRevision(r.info, filter.namespace));
      } catch (err) {
        throw internalError(errorMessage(err));
      }
    }
    const selected = items.filter((o) => matchesFilter(filter, o));
    const resourceVersion = String(revision);
    if (wantsTable(ctx.req.headers.accept ?? '')) {
      // The Table of `toTable`, serialised row by row: each row's metadata (most of its
      // bytes) is reused from the last answer that showed the same object.
      const now = this.now();
      const empty = JSON.stringify(toTable(r.kind, [], resourceVersion, { now }));
      const rows = selected.map((o) => this.rowJson(r, o, now));
      // `"rows":[]` closes the empty Table's JSON.
      sendJson(ctx.res, 200, `${empty.slice(0, -2)}${rows.join(',')}]}`);
      return;
    }
    // Objects unchanged since the last list are the same (immutable) objects: their JSON is
    // reused rather than serialised again.
    const head = JSON.stringify({
      kind: `${r.kind}List`,
      apiVersion: r.groupVersion,
      metadata: { resourceVersion },
    });
    const body = `${head.slice(0, -1)},"items":[${selected.map((o) => this.encoded(r, o)).join(',')}]}`;
    sendJson(ctx.res, 200, body);
  }

  /**
   * Whether the watch cache of `r` has seen every change up to the store's revision now.
   * The kvstore watch delivers a prefix's changes in revision order, so a cache at or past
   * that revision holds exactly what a read from the store would return. One cheap range
   * read; when other keys changed since the kind's last change, the store is read instead.
   */
  private async cacheIsCurrent(r: ApiResource, cache: KindWatchCache): Promise<boolean> {
    try {
      const head = await this.deps.registry.backend.listPage(resourcePrefix(r.info), { limit: 1 });
      return cache.revision >= head.revision;
    } catch {
      return false;
    }
  }

  private readonly json = new WeakMap<RegistryObject, { groupVersion: string; text: string }>();
  private readonly metaJson = new WeakMap<RegistryObject, { groupVersion: string; text: string }>();

  private readonly rows = new WeakMap<
    RegistryObject,
    { groupVersion: string; timed: string; text: string }
  >();

  /**
   * One Table row's JSON. Objects are immutable, so a row is serialised again only when
   * its time-dependent cells (ages) now read differently, for built-in kinds; a list of
   * 10,000 unchanged pods is then mostly a concatenation.
   */
  private rowJson(r: ApiResource, o: RegistryObject, now: Date): string {
    const shown = inVersion(r, o);
    const timed = timedCells(r.kind, shown, now);
    const hit = this.rows.get(o);
    if (timed !== undefined && hit?.groupVersion === r.groupVersion && hit.timed === timed) {
      return hit.text;
    }
    const text = `{"cells":${JSON.stringify(tableCells(r.kind, shown, now))},"object":${this.metadataJson(r, o, shown)}}`;
    if (timed !== undefined) this.rows.set(o, { groupVersion: r.groupVersion, timed, text });
    return text;
  }

  private metadataJson(r: ApiResource, o: RegistryObject, shown: RegistryObject): string {
    const hit = this.metaJson.get(o);
    if (hit?.groupVersion === r.groupVersion) return hit.text;
    const text = JSON.stringify(partialMetadata(shown));
    this.metaJson.set(o, { groupVersion: r.groupVersion, text });
    return text;
  }

  private encoded(r: ApiResource, o: RegistryObject): string {
    const hit = this.json.get(o);
    if (hit?.groupVersion === r.groupVersion) return hit.text;
    const text = JSON.stringify(inVersion(r, o));
    this.json.set(o, { groupVersion: r.groupVersion, text });
    return text;
  }

  /**
   * `?watch=true`: newline-delimited JSON events, one per line, from the watch cache.
   * Without a resourceVersion (or with 0) the current objects come first as ADDED events.
   * A resourceVersion older than the history, or compacted in the kvstore, gets an
   * Expired (410) ERROR event and the stream ends, so that clients re-list.
   */
  private async watch(ctx: RequestContext): Promise<void> {
    const { req, res, url } = ctx;
    const { r } = ctx.target;
    const filter = this.filterOf(ctx);
    if (ctx.target.name !== undefined) {
      throw badRequest('watch of a single object: use fieldSelector=metadata.name=<name>');
    }
    const cache = this.deps.caches.of(r.kind);
    if (cache === undefined) throw internalError(`no watch cache for ${r.kind}`);
    await cache.whenReady();
    const rv = url.searchParams.get('resourceVersion') ?? '';
    const table = wantsTable(req.headers.accept ?? '');
    const timeoutSeconds = Number(url.searchParams.get('timeoutSeconds') ?? '0');
    let from: number;
    let initial: RegistryObject[] = [];
    if (rv === '' || rv === '0') {
      from = cache.revision;
      initial = cache.sortedSnapshot().filter((o) => matchesFilter(filter, o));
    } else {
      from = Number(rv);
      if (!Number.isInteger(from) || from < 0) {
        throw badRequest(`invalid resource version: ${JSON.stringify(rv.slice(0, 40))}`);
      }
    }
    // Only a resourceVersion the client names can be too old: without one, the watch starts
    // from the cache's own state.
    const named = rv !== '' && rv !== '0';
    const expiredAt = !named
      ? undefined
      : from < cache.floor
        ? cache.floor
        : await this.compactedAt(r, from);

    res.writeHead(200, {
      'Content-Type': 'application/json',
      'Cache-Control': 'no-cache, private',
      'Transfer-Encoding': 'chunked',
    });
    res.flushHeaders();
    if (expiredAt !== undefined) {
      writeLine(res, { type: 'ERROR', object: expired(rv, expiredAt).toStatus() });
      res.end();
      return;
    }

    let columnsSent = false;
    /** One watch event's line; a Table watch's first one carries the column definitions. */
    const encode = (type: WatchEventType, obj: RegistryObject): Buffer => {
      const shown = inVersion(r, obj);
      if (!table) return Buffer.from(`${JSON.stringify({ type, object: shown })}\n`);
      if (!columnsSent) {
        columnsSent = true;
        const t = toTable(r.kind, [shown], shown.metadata.resourceVersion, { now: this.now() });
        return Buffer.from(`${JSON.stringify({ type, object: t })}\n`);
      }
      const t = {
        kind: 'Table',
        apiVersion: 'meta.k8s.io/v1',
        metadata: { resourceVersion: shown.metadata.resourceVersion },
        columnDefinitions: null,
        rows: [tableRow(r.kind, shown, this.now())],
      };
      return Buffer.from(`${JSON.stringify({ type, object: t })}\n`);
    };
    // Watchers with the same selection and format get the same bytes for an event: the
    // first of them decides and serialises it, the others reuse the result (null: not for
    // them). The selectors' query text is the key, so the filter is not re-parsed either.
    const q = url.searchParams;
    const memoKey = [
      table ? 'table' : 'json',
      r.groupVersion,
      filter.namespace ?? '',
      q.get('labelSelector') ?? '',
      q.get('fieldSelector') ?? '',
    ].join('\u0000');
    const forEvent = (ev: CacheEvent): Buffer | null => {
      // A Table watch's first line is its own (it carries the columns).
      const first = table && !columnsSent;
      if (!first) {
        const hit = ev.encoded.get(memoKey);
        if (hit !== undefined) return hit;
      }
      const type = selectedAs(filter, ev);
      const out = type === undefined ? null : encode(type, ev.object);
      if (!first || out === null) ev.encoded.set(memoKey, out);
      return out;
    };

    const w: { closed: boolean; unsubscribe?: () => void; timer?: NodeJS.Timeout } = {
      closed: false,
    };
    const close = (): void => {
      if (w.closed) return;
      w.closed = true;
      w.unsubscribe?.();
      if (w.timer !== undefined) clearTimeout(w.timer);
      this.watches.delete(close);
      if (!res.writableEnded) res.end();
    };
    this.watches.add(close);
    req.on('close', close);
    res.on('close', close);
    res.on('error', close);

    let corked = false;
    const send = (line: Buffer): void => {
      if (w.closed) return;
      // Events of one kvstore watch response arrive in one tick: one TLS record and one
      // write for all of them rather than one each.
      if (!corked) {
        corked = true;
        res.cork();
        process.nextTick(() => {
          corked = false;
          res.uncork();
        });
      }
      res.write(line);
      if (res.writableLength > MAX_WATCH_BACKLOG) {
        this.deps.log.warn({ resource: r.resource }, 'dropping a watch whose client does not read');
        res.destroy();
        close();
      }
    };
    for (const o of initial) send(encode('ADDED', o));
    const unsubscribe = cache.subscribe(from, (ev) => {
      const out = forEvent(ev);
      if (out !== null) send(out);
    });
    if (unsubscribe === undefined) {
      send(
        Buffer.from(
          `${JSON.stringify({ type: 'ERROR', object: expired(rv, cache.floor).toStatus() })}\n`,
        ),
      );
      close();
      return;
    }
    w.unsubscribe = unsubscribe;
    // Closed while replaying (a client that does not read): nothing else to do.
    if (w.closed) {
      unsubscribe();
      return;
    }
    if (Number.isFinite(timeoutSeconds) && timeoutSeconds > 0) {
      w.timer = setTimeout(close, timeoutSeconds * 1000);
      w.timer.unref();
    }
  }

  /** The revision the kvstore compacted `rv` away at, or undefined when it is still readable. */
  private async compactedAt(r: ApiResource, rv: number): Promise<number | undefined> {
    if (rv === 0) return undefined;
    try {
      await this.deps.registry.backend.listPage(resourcePrefix(r.info), { revision: rv, limit: 1 });
      return undefined;
    } catch (err) {
      if (isClusterMeshError(err, ErrorCode.Compacted) || /compacted/i.test(errorMessage(err))) {
        return this.deps.caches.of(r.kind)?.revision ?? rv;
      }
      // A future revision, or an unreachable store: the watch itself will tell.
      return undefined;
    }
  }

  // ---- writes ----

  private async create(ctx: RequestContext): Promise<void> {
    const { r, namespace } = ctx.target;
    const body = await readJson(ctx.req);
    if (!isRecord(body)) throw badRequest('the body of the request must be a JSON object');
    const mode = parseFieldValidation(ctx.url.searchParams.get('fieldValidation'));
    const doc = structuredClone(body);
    const meta = isRecord(doc.metadata) ? doc.metadata : {};
    doc.metadata = meta;
    if (r.namespaced) {
      const ns =
        typeof meta.namespace === 'string' && meta.namespace !== '' ? meta.namespace : undefined;
      if (ns !== undefined && ns !== namespace) {
        throw badRequest(
          'the namespace of the provided object does not match the namespace sent on the request',
        );
      }
      meta.namespace = namespace;
    }
    if (meta.name === undefined && typeof meta.generateName === 'string') {
      meta.name = `${meta.generateName}${randomSuffix()}`;
    }
    // Server-owned on create.
    delete meta.resourceVersion;
    delete meta.uid;
    delete meta.creationTimestamp;
    const { object, warnings } = validateFor(r, doc, mode);
    if (isDryRun(ctx)) {
      if (
        (await this.deps.registry.get(r.info, object.metadata.namespace, object.metadata.name)) !==
        undefined
      ) {
        throw alreadyExists(r, object.metadata.name);
      }
      sendJson(ctx.res, 201, inVersion(r, object), { warnings });
      return;
    }
    let stored: RegistryObject;
    try {
      stored = await this.deps.registry.create(object);
    } catch (err) {
      throw this.writeError(err, r, object.metadata.name);
    }
    sendJson(ctx.res, 201, inVersion(r, stored), { warnings });
  }

  private async update(ctx: RequestContext, part: 'main' | 'status'): Promise<void> {
    const { r, name = '' } = ctx.target;
    const body = await readJson(ctx.req);
    if (!isRecord(body)) throw badRequest('the body of the request must be a JSON object');
    const mode = parseFieldValidation(ctx.url.searchParams.get('fieldValidation'));
    const meta = isRecord(body.metadata) ? body.metadata : {};
    if (meta.name !== undefined && meta.name !== name) {
      throw badRequest(
        `the name of the object (${JSON.stringify(meta.name)}) does not match the name on the URL (${name})`,
      );
    }
    const cur = await this.current(ctx.target);
    let doc: Record<string, unknown>;
    if (part === 'status') {
      doc = { ...structuredClone(cur), status: body.status };
      doc.metadata = {
        ...cur.metadata,
        resourceVersion: meta.resourceVersion ?? cur.metadata.resourceVersion,
      };
    } else {
      doc = structuredClone(body);
      doc.metadata = {
        ...meta,
        name,
        ...(r.namespaced ? { namespace: ctx.target.namespace } : {}),
      };
      if (hasStatusSubresource(r.kind)) doc.status = cur.status;
    }
    const rv = isRecord(doc.metadata) ? doc.metadata.resourceVersion : undefined;
    const { object, warnings } = validateFor(r, doc, mode);
    if (isDryRun(ctx)) {
      if (typeof rv === 'string' && rv !== '' && rv !== cur.metadata.resourceVersion) {
        throw conflict(r, name);
      }
      sendJson(ctx.res, 200, inVersion(r, object), { warnings });
      return;
    }
    const stored = await this.write(r, object, typeof rv === 'string' ? rv : undefined);
    sendJson(ctx.res, 200, inVersion(r, stored), { warnings });
  }

  private async patch(ctx: RequestContext, part: 'main' | 'status'): Promise<void> {
    const { r, name = '' } = ctx.target;
    const type = (ctx.req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    if (type === PATCH_TYPES.strategic && !r.builtin) {
      throw unsupportedMediaType(
        `${type}: strategic merge patch is not supported for custom resources; use a merge patch`,
      );
    }
    if (type !== PATCH_TYPES.strategic && type !== PATCH_TYPES.merge && type !== PATCH_TYPES.json) {
      throw unsupportedMediaType(type);
    }
    const text = await readBody(ctx.req);
    let patch: Json;
    try {
      patch = JSON.parse(text) as Json;
    } catch (err) {
      throw badRequest(`error decoding patch: ${errorMessage(err)}`);
    }
    const mode = parseFieldValidation(ctx.url.searchParams.get('fieldValidation'));
    for (let attempt = 1; ; attempt++) {
      const cur = await this.current(ctx.target);
      const patched = applyPatch(type, cur as unknown as Json, patch, r.kind);
      if (!isRecord(patched)) throw badRequest('the patch must leave an object');
      let doc: Record<string, unknown>;
      if (part === 'status') {
        doc = { ...structuredClone(cur) };
        if (patched.status === undefined) delete doc.status;
        else doc.status = patched.status;
      } else {
        doc = patched;
        if (hasStatusSubresource(r.kind)) {
          if (cur.status === undefined) delete doc.status;
          else doc.status = cur.status;
        }
      }
      const meta = isRecord(doc.metadata) ? doc.metadata : {};
      // The identity is the URL's, whatever the patch says.
      doc.metadata = {
        ...meta,
        name,
        ...(r.namespaced ? { namespace: ctx.target.namespace } : {}),
      };
      const asked = meta.resourceVersion;
      const precondition =
        typeof asked === 'string' && asked !== '' && asked !== cur.metadata.resourceVersion
          ? asked
          : undefined;
      const { object, warnings } = validateFor(r, doc, mode);
      if (isDryRun(ctx)) {
        if (precondition !== undefined) throw conflict(r, name);
        sendJson(ctx.res, 200, inVersion(r, object), { warnings });
        return;
      }
      try {
        const stored = await this.write(r, object, precondition ?? cur.metadata.resourceVersion);
        sendJson(ctx.res, 200, inVersion(r, stored), { warnings });
        return;
      } catch (err) {
        const retry =
          err instanceof ApiError && err.reason === 'Conflict' && precondition === undefined;
        if (!retry || attempt >= PATCH_ATTEMPTS) throw err;
      }
    }
  }

  /** Update with a resourceVersion precondition (when given), as the API's errors. */
  private async write(
    r: ApiResource,
    object: RegistryObject,
    resourceVersion: string | undefined,
  ): Promise<RegistryObject> {
    try {
      return await this.deps.registry.update({
        ...object,
        metadata: { ...object.metadata, resourceVersion },
      });
    } catch (err) {
      throw this.writeError(err, r, object.metadata.name);
    }
  }

  private writeError(err: unknown, r: ApiResource, name: string): Error {
    if (err instanceof ApiError) return err;
    if (isClusterMeshError(err, ErrorCode.Conflict)) {
      return /already exists/.test(err.message) ? alreadyExists(r, name) : conflict(r, name);
    }
    if (isClusterMeshError(err, ErrorCode.KeyNotFound)) return notFound(r, name);
    if (isClusterMeshError(err, ErrorCode.InvalidArgument)) {
      return invalid(r.kind, r.group, name, [
        { reason: 'FieldValueInvalid', message: err.message },
      ]);
    }
    return internalError(errorMessage(err));
  }

  private async delete(ctx: RequestContext): Promise<void> {
    const { r, name = '' } = ctx.target;
    const body = await readJson(ctx.req);
    const cur = await this.current(ctx.target);
    const pre = isRecord(body) && isRecord(body.preconditions) ? body.preconditions : undefined;
    if (pre !== undefined) {
      if (typeof pre.uid === 'string' && pre.uid !== cur.metadata.uid) {
        throw new ApiError(
          409,
          'Conflict',
          `Precondition failed: UID in precondition: ${pre.uid}, UID in object meta: ${cur.metadata.uid ?? ''}`,
          { name, kind: r.resource, ...(r.group === '' ? {} : { group: r.group }) },
        );
      }
      if (
        typeof pre.resourceVersion === 'string' &&
        pre.resourceVersion !== cur.metadata.resourceVersion
      ) {
        throw new ApiError(
          409,
          'Conflict',
          `Precondition failed: ResourceVersion in precondition: ${pre.resourceVersion}, ResourceVersion in object meta: ${cur.metadata.resourceVersion ?? ''}`,
          { name, kind: r.resource, ...(r.group === '' ? {} : { group: r.group }) },
        );
      }
    }
    if (isDryRun(ctx)) {
      sendJson(ctx.res, 200, inVersion(r, cur));
      return;
    }
    let existed: boolean;
    try {
      existed = await this.deps.registry.delete(r.info, ctx.target.namespace, name);
    } catch (err) {
      throw internalError(errorMessage(err));
    }
    if (!existed) throw notFound(r, name);
    sendJson(ctx.res, 200, inVersion(r, cur));
  }

  // ---- /scale ----

  private scaleOf(dep: RegistryObject): Record<string, unknown> {
    const spec = isRecord(dep.spec) ? dep.spec : {};
    const status = isRecord(dep.status) ? dep.status : {};
    const m = dep.metadata;
    return {
      kind: 'Scale',
      apiVersion: 'autoscaling/v1',
      metadata: {
        name: m.name,
        namespace: m.namespace,
        uid: m.uid,
        resourceVersion: m.resourceVersion,
        creationTimestamp: m.creationTimestamp,
      },
      spec: { replicas: typeof spec.replicas === 'number' ? spec.replicas : 1 },
      status: {
        replicas: typeof status.replicas === 'number' ? status.replicas : 0,
        selector: formatLabelSelector(spec.selector).replace(/^<none>$/, ''),
      },
    };
  }

  private async getScale(ctx: RequestContext): Promise<void> {
    sendJson(ctx.res, 200, this.scaleOf(await this.current(ctx.target)));
  }

  private async writeScale(ctx: RequestContext, method: 'PUT' | 'PATCH'): Promise<void> {
    const { r, name = '' } = ctx.target;
    const type = (ctx.req.headers['content-type'] ?? '').split(';')[0]?.trim() ?? '';
    const text = await readBody(ctx.req);
    let body: Json;
    try {
      body = JSON.parse(text) as Json;
    } catch (err) {
      throw badRequest(`error decoding body: ${errorMessage(err)}`);
    }
    for (let attempt = 1; ; attempt++) {
      const dep = await this.current(ctx.target);
      const scale = this.scaleOf(dep) as unknown as Json;
      const next = method === 'PUT' ? body : applyPatch(type, scale, body, 'Scale');
      const spec = isRecord(next) && isRecord(next.spec) ? next.spec : {};
      const replicas = spec.replicas;
      if (typeof replicas !== 'number' || !Number.isInteger(replicas) || replicas < 0) {
        throw invalid('Scale', 'autoscaling', name, [
          {
            reason: 'FieldValueInvalid',
            message: `Invalid value: ${JSON.stringify(replicas ?? null)}: must be greater than or equal to 0`,
            field: 'spec.replicas',
          },
        ]);
      }
      const meta = isRecord(next) && isRecord(next.metadata) ? next.metadata : {};
      const asked =
        typeof meta.resourceVersion === 'string' && meta.resourceVersion !== ''
          ? meta.resourceVersion
          : undefined;
      const updated: RegistryObject = {
        ...dep,
        spec: { ...(isRecord(dep.spec) ? dep.spec : {}), replicas },
      };
      if (isDryRun(ctx)) {
        sendJson(ctx.res, 200, this.scaleOf(updated));
        return;
      }
      try {
        const stored = await this.write(r, updated, asked ?? dep.metadata.resourceVersion);
        sendJson(ctx.res, 200, this.scaleOf(stored));
        return;
      } catch (err) {
        const retry = err instanceof ApiError && err.reason === 'Conflict' && asked === undefined;
        if (!retry || attempt >= PATCH_ATTEMPTS) throw err;
      }
    }
  }
}

function applyPatch(type: string, cur: Json, patch: Json, kind: string): Json {
  if (type === PATCH_TYPES.merge) return jsonMergePatch(cur, patch);
  if (type === PATCH_TYPES.strategic) return strategicMergePatch(cur, patch, patchSchemaOf(kind));
  if (type === PATCH_TYPES.json) {
    if (!Array.isArray(patch)) throw badRequest('a JSON patch must be a list of operations');
    try {
      const doc = structuredClone(cur);
      const out = fastJsonPatch.applyPatch(
        doc,
        patch as unknown as fastJsonPatch.Operation[],
        true,
        true,
      );
      return out.newDocument;
    } catch (err) {
      throw new ApiError(
        422,
        'Invalid',
        `the server rejected our request due to an error in our request: ${errorMessage(err).split('\n')[0] ?? ''}`,
      );
    }
  }
  throw unsupportedMediaType(type);
}

/**
 * How an event shows to a watch selecting `filter`: an object entering or leaving the
 * selection is added or deleted for it; undefined when the watch does not see it.
 */
function selectedAs(filter: ObjectFilter, ev: CacheEvent): WatchEventType | undefined {
  const now = matchesFilter(filter, ev.object);
  if (ev.type === 'MODIFIED' && ev.previous !== undefined) {
    const before = matchesFilter(filter, ev.previous);
    if (now && before) return 'MODIFIED';
    if (now) return 'ADDED';
    if (before) return 'DELETED';
    return undefined;
  }
  return now ? ev.type : undefined;
}

function writeLine(res: ServerResponse, value: unknown): void {
  res.write(`${JSON.stringify(value)}\n`);
}

/**
 * `dryRun=All` (`kubectl --dry-run=server`, `kubectl diff`): everything but the write. Any
 * other value is refused rather than ignored, as the Kubernetes API server does.
 */
function isDryRun(ctx: RequestContext): boolean {
  const values = ctx.url.searchParams.getAll('dryRun');
  if (values.length === 0) return false;
  if (values.every((v) => v === 'All')) return true;
  throw badRequest(
    `dryRun: Unsupported value: ${JSON.stringify(values.find((v) => v !== 'All') ?? '')}: supported values: "All"`,
  );
}

function isTrue(v: string | null): boolean {
  return v === 'true' || v === '1';
}

function randomSuffix(): string {
  const chars = 'bcdfghjklmnpqrstvwxz2456789';
  let s = '';
  for (let i = 0; i < 5; i++) s += chars[Math.floor(Math.random() * chars.length)] ?? 'x';
  return s;
}

function notFoundPage(): ApiError {
  return new ApiError(404, 'NotFound', 'the server could not find the requested resource');
}
