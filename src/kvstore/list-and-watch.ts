import type { Logger } from 'pino';
import { isAborted, sleep } from '../lib/abort.js';
import { Backoff } from '../lib/backoff.js';
import { errorMessage, isClusterMeshError, ErrorCode } from '../lib/errors.js';
import type { ListPage, ListPageOptions, WatchEvent } from './backend.js';

/** One change as a backend's native watch reports it. */
export interface RawEvent {
  readonly kind: 'put' | 'delete';
  readonly key: string;
  readonly value: string;
  readonly modRevision: number;
}

/** The two primitives a backend provides; the restart/diff logic lives here, once. */
export interface WatchPrimitives {
  listPage(prefix: string, opts: ListPageOptions): Promise<ListPage>;
  /**
   * Native watch of `prefix` from `fromRevision`, as batches. Must throw (not end)
   * on compaction, cluster-ID change or any other reason the stream is no longer
   * complete; ends quietly only when `signal` aborts.
   */
  watch(
    prefix: string,
    fromRevision: number,
    signal: AbortSignal,
  ): AsyncIterable<readonly RawEvent[]>;
  /** The etcd cluster ID the connection is pinned to (after its first answer). */
  clusterId(): string | undefined;
}

/**
 * What is remembered per emitted key: only its mod revision. Within one etcd
 * cluster a key's mod revision changes with every write, so equal revisions mean an
 * equal value; after the cluster changed (wipe) every key is re-emitted instead.
 * Not keeping values saves most of the memory of a large remote cluster.
 */
interface Known {
  modRevision: number;
  generation: number;
}

export interface ListAndWatchLoopOptions {
  readonly pageSize: number;
  readonly stopOnClusterChange?: boolean | undefined;
  readonly log: Logger;
  /** Retry delays after a failed list or watch (reference: 50ms → 1min). */
  readonly retryInitialMs?: number;
  readonly retryMaxMs?: number;
}

/**
 * List `prefix` page by page at one revision, then watch from revision + 1. Any
 * failure re-lists and diffs against what was already emitted: unchanged keys are
 * not re-emitted, changed ones are emitted as upserts, vanished ones as deletes,
 * then one `listDone`. A consumer applying the stream therefore converges on the
 * store's state whatever happened in between (restart, compaction, wipe).
 */
export async function* listAndWatch(
  prims: WatchPrimitives,
  prefix: string,
  signal: AbortSignal,
  opts: ListAndWatchLoopOptions,
): AsyncGenerator<WatchEvent> {
  const known = new Map<string, Known>();
  const backoff = new Backoff({
    initialMs: opts.retryInitialMs ?? 50,
    maxMs: opts.retryMaxMs ?? 60_000,
  });
  let generation = 0;
  let relist = 0;

  let listedCluster: string | undefined;

  while (!signal.aborted) {
    try {
      generation++;
      // Consistent paging: every page after the first is read at the first page's
      // revision. The next page is fetched while the current one is consumed.
      let revision: number | undefined;
      let next: Promise<ListPage> | undefined = prims.listPage(prefix, { limit: opts.pageSize });
      let sameCluster = false;
      while (next !== undefined) {
        const page: ListPage = await next;
        if (revision === undefined) {
          revision = page.revision;
          const cluster = prims.clusterId();
          sameCluster = cluster !== undefined && cluster === listedCluster;
          listedCluster = cluster;
        }
        const last = page.kvs[page.kvs.length - 1];
        next =
          page.more && last !== undefined
            ? prims.listPage(prefix, { startAfter: last.key, limit: opts.pageSize, revision })
            : undefined;
        // Abandoned (consumer stopped, error below): never an unhandled rejection.
        next?.catch(() => undefined);
        for (const kv of page.kvs) {
          const prev = known.get(kv.key);
          if (prev === undefined) {
            known.set(kv.key, { modRevision: kv.modRevision, generation });
          } else {
            prev.generation = generation;
            if (sameCluster && prev.modRevision === kv.modRevision) continue;
            prev.modRevision = kv.modRevision;
          }
          yield { kind: 'upsert', key: kv.key, value: kv.value, modRevision: kv.modRevision };
        }
      }
      if (revision === undefined) continue;
      for (const [key, entry] of known) {
        if (entry.generation !== generation) {
          known.delete(key);
          yield { kind: 'delete', key, modRevision: revision };
        }
      }
      yield { kind: 'listDone', revision, relist };
      relist++;
      if (isAborted(signal)) return;

      let healthy = false;
      for await (const batch of prims.watch(prefix, revision + 1, signal)) {
        if (!healthy) {
          healthy = true;
          backoff.reset();
        }
        for (const ev of batch) {
          if (ev.kind === 'put') {
            const prev = known.get(ev.key);
            if (prev === undefined) {
              known.set(ev.key, { modRevision: ev.modRevision, generation });
            } else {
              prev.modRevision = ev.modRevision;
            }
            yield { kind: 'upsert', key: ev.key, value: ev.value, modRevision: ev.modRevision };
          } else if (known.delete(ev.key)) {
            yield { kind: 'delete', key: ev.key, modRevision: ev.modRevision };
          }
        }
      }
      if (!isAborted(signal)) {
        // A closed watch is reopened after a short pause, as the reference does (50ms).
        opts.log.debug({ prefix }, 'watch ended, re-listing');
        await sleep(50, signal).catch(() => undefined);
      }
    } catch (err) {
      if (isAborted(signal) || isClusterMeshError(err, ErrorCode.KvstoreClosed)) return;
      if (
        opts.stopOnClusterChange === true &&
        isClusterMeshError(err, ErrorCode.EtcdClusterIdMismatch)
      ) {
        throw err;
      }
      const delay = backoff.next();
      opts.log.warn(
        { prefix, err: errorMessage(err), code: codeOf(err), retryInMs: delay },
        'list-and-watch interrupted, re-listing',
      );
      try {
        await sleep(delay, signal);
      } catch {
        return;
      }
    }
  }
}

function codeOf(err: unknown): string | undefined {
  return isClusterMeshError(err) ? err.code : undefined;
}
