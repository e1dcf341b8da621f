import { X509Certificate } from 'node:crypto';
import { channel } from 'node:diagnostics_channel';
import { ExponentialBackoff, handleWhen, isBrokenCircuitError, noop, retry } from 'cockatiel';
import {
  Etcd3,
  EtcdLeaseInvalidError,
  Range,
  isRecoverableError,
  type IRequestOp,
  type IResponseHeader,
  type IOptions,
  type Watcher,
} from 'etcd3';
import type { Logger } from 'pino';
import { AsyncQueue } from '../lib/async-queue.js';
import { ClusterMeshError, ErrorCode, errorMessage, isClusterMeshError } from '../lib/errors.js';
import { silentLogger } from '../lib/logger.js';
import { RateLimiter } from '../lib/rate-limit.js';
import {
  DEFAULT_LEASE_TTL_SECONDS,
  DEFAULT_LIST_LIMIT,
  type Backend,
  type BackendStatus,
  type KeyValue,
  type ListPage,
  type ListAndWatchOptions,
  type ListPageOptions,
  type ModRevisionCompare,
  type Lock,
  type PutOptions,
  type TxnOp,
  type WatchEvent,
} from './backend.js';
import { applyHostAliases, tlsNameOverride, type HostAliases } from './host-aliases.js';
import { listAndWatch, type RawEvent } from './list-and-watch.js';
import { SessionBackend, type LeaseHandle } from './session.js';

export interface EtcdTls {
  readonly ca?: Buffer | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
}

export interface EtcdBackendOptions {
  readonly endpoints: readonly string[];
  readonly tls?: EtcdTls | undefined;
  /**
   * Hostname → IP for the endpoints (the seeds' hostAliases): the client connects to the IP
   * and TLS verifies the hostname.
   */
  readonly hostAliases?: HostAliases | undefined;
  /** Operations per second (0 = unlimited) and cap on operations in flight. */
  readonly qps?: number | undefined;
  readonly maxInflight?: number | undefined;
  /** List page size (reference: etcd.limit, default 256). */
  readonly listLimit?: number | undefined;
  readonly leaseTtlSeconds?: number | undefined;
  /** Deadline for unary calls, so a black-holed endpoint cannot hang a caller. */
  readonly callTimeoutMs?: number | undefined;
  readonly log?: Logger | undefined;
}

/** Published for every operation; metrics subscribe (reference: kvstore_operations_duration_seconds). */
export interface KvstoreOperationMessage {
  readonly action: string;
  readonly kind: 'read' | 'set' | 'delete' | 'lease' | 'txn';
  readonly key: string;
  readonly durationMs: number;
  readonly outcome: 'success' | 'fail';
}
export const KVSTORE_OPERATION_CHANNEL = 'clustermesh:kvstore:operation';
export const kvstoreOperationChannel = channel(KVSTORE_OPERATION_CHANNEL);

const LOCK_TTL_SECONDS = 25;

/**
 * The etcd backend (etcd3). All calls go through the raw KV client so that every
 * response header is seen: that is where the etcd cluster ID is pinned.
 * etcd3's own retries and circuit breakers are replaced by one retry across
 * endpoints; longer-term retrying belongs to the callers (stores, controllers).
 */
export class EtcdBackend extends SessionBackend implements Backend {
  readonly kind = 'etcd' as const;
  private readonly client: Etcd3;
  private readonly limiter: RateLimiter;
  private readonly listLimit: number;
  private readonly lockLeases = new Set<string>();

  constructor(readonly opts: EtcdBackendOptions) {
    if (opts.endpoints.length === 0) {
      throw new ClusterMeshError(ErrorCode.InvalidConfig, 'etcd: no endpoints configured');
    }
    super(opts.log ?? silentLogger, opts.leaseTtlSeconds ?? DEFAULT_LEASE_TTL_SECONDS);
    this.listLimit = opts.listLimit ?? DEFAULT_LIST_LIMIT;
    this.limiter = new RateLimiter(opts.qps ?? 0, opts.maxInflight ?? 0);
    const timeout = opts.callTimeoutMs ?? 15_000;
    const dial = applyHostAliases(opts.endpoints, opts.hostAliases);
    const options: IOptions = {
      hosts: dial.endpoints,
      faultHandling: {
        host: () => noop,
        // cockatiel's maxAttempts counts retries: one attempt per endpoint in all, so a
        // black-holed single endpoint fails after one callTimeoutMs, not two.
        global: retry(handleWhen(isRecoverableError), { maxAttempts: opts.endpoints.length - 1 }),
        // etcd3 re-opens a failed watch stream after this backoff (default: up to 30 s), and
        // close() cannot cancel a pending re-open: keep it in line with the channel's
        // reconnect backoff so watches resume soon after an outage and processes exit.
        watchBackoff: new ExponentialBackoff({ initialDelay: 200, maxDelay: 2_000 }).next(),
      },
      defaultCallOptions: (ctx) => (ctx.isStream ? {} : { deadline: Date.now() + timeout }),
      grpcOptions: {
        'grpc.keepalive_time_ms': 15_000,
        'grpc.keepalive_timeout_ms': 25_000,
        'grpc.keepalive_permit_without_calls': 1,
        'grpc.initial_reconnect_backoff_ms': 200,
        'grpc.max_reconnect_backoff_ms': 2_000,
        'grpc.max_receive_message_length': 64 * 1024 * 1024,
        // The endpoint's own name, not the aliased IP, is what the server certificate names.
        ...tlsNameOverride(dial.serverName, opts.tls?.ca !== undefined),
      },
    };
    if (opts.tls?.ca !== undefined) {
      options.credentials = {
        rootCertificate: opts.tls.ca,
        ...(opts.tls.key === undefined ? {} : { privateKey: opts.tls.key }),
        ...(opts.tls.cert === undefined ? {} : { certChain: opts.tls.cert }),
      };
    }
    this.client = new Etcd3(options);
  }

  /** Waits until the server answers (and its cluster ID is pinned), or fails. */
  async connect(): Promise<void> {
    await this.get('cilium/.heartbeat');
  }

  /**
   * Changes the operation rate limit (0 = unlimited). Daemons start with
   * `etcd.bootstrapQps` and switch to `etcd.qps` once their initial sync is done.
   */
  setQps(qps: number): void {
    this.limiter.setQps(qps);
  }

  // ---- plumbing ----------------------------------------------------------

  private async op<T extends { header?: IResponseHeader }>(
    action: string,
    kind: KvstoreOperationMessage['kind'],
    key: string,
    fn: () => Promise<T>,
  ): Promise<T> {
    this.throwIfClosed();
    const start = performance.now();
    let outcome: KvstoreOperationMessage['outcome'] = 'fail';
    try {
      const res = await this.limiter.run(fn, this.abort.signal);
      if (res.header !== undefined) this.pin.check(res.header.cluster_id);
      outcome = 'success';
      return res;
    } catch (err) {
      const e = this.translate(err, action, key);
      this.pin.failed(e);
      throw e;
    } finally {
      if (kvstoreOperationChannel.hasSubscribers) {
        const msg: KvstoreOperationMessage = {
          action,
          kind,
          key,
          durationMs: performance.now() - start,
          outcome,
        };
        kvstoreOperationChannel.publish(msg);
      }
    }
  }

  private translate(err: unknown, action: string, key: string): Error {
    if (isClusterMeshError(err)) return err;
    const msg = errorMessage(err);
    const where = this.opts.endpoints.join(',');
    if (err instanceof EtcdLeaseInvalidError || /lease not found/i.test(msg)) {
      return new ClusterMeshError(ErrorCode.LeaseLost, `${action} ${key}: ${msg}`, { cause: err });
    }
    // Transport failures that merely mention TLS ("socket disconnected before
    // secure TLS connection was established") are outages, not TLS misconfiguration.
    const transport =
      /ECONNREFUSED|ECONNRESET|EPIPE|socket disconnected|deadline|connection dropped/i;
    if (/certificate|ssl|tls|handshake|alert/i.test(msg) && !transport.test(msg)) {
      return new ClusterMeshError(
        ErrorCode.KvstoreTls,
        `etcd at ${where}: TLS handshake failed: ${tlsReason(msg)}${clientCertProblem(this.opts.tls, rejectedByServer(msg))}`,
        { cause: err },
      );
    }
    if (
      isBrokenCircuitError(err) ||
      (err instanceof Error && isRecoverableError(err)) ||
      /unavailable|deadline|connect|no connection/i.test(msg)
    ) {
      return new ClusterMeshError(
        ErrorCode.KvstoreUnreachable,
        `etcd at ${where} unreachable: ${shorten(msg)}`,
        { cause: err },
      );
    }
    if (/compacted/i.test(msg)) {
      return new ClusterMeshError(ErrorCode.Compacted, `${action} ${key}: ${msg}`, { cause: err });
    }
    return new ClusterMeshError(ErrorCode.KvstoreOperation, `${action} ${key}: ${shorten(msg)}`, {
      cause: err,
    });
  }

  private async leaseFor(key: string, lease: boolean | undefined): Promise<string> {
    if (lease === true) return this.leases.leaseFor(key);
    this.leases.forget(key);
    return '0';
  }

  /** Runs a write; a "lease not found" answer drops the lease so the retry gets a fresh one. */
  private async write<T>(key: string, lease: string, fn: () => Promise<T>): Promise<T> {
    try {
      return await fn();
    } catch (err) {
      if (isClusterMeshError(err, ErrorCode.LeaseLost) && lease !== '0') {
        this.leases.invalidate(lease);
      }
      throw err;
    }
  }

  // ---- reads -------------------------------------------------------------

  async get(key: string): Promise<KeyValue | undefined> {
    const res = await this.op('Get', 'read', key, () =>
      this.client.kv.range({ key: Buffer.from(key) }),
    );
    const kv = res.kvs[0];
    return kv === undefined ? undefined : toKV(kv);
  }

  async listPage(prefix: string, opts: ListPageOptions = {}): Promise<ListPage> {
    const range = Range.prefix(prefix);
    const start =
      opts.startAfter === undefined
        ? range.start
        : Buffer.concat([Buffer.from(opts.startAfter), Buffer.from([0])]);
    const limit = opts.limit ?? this.listLimit;
    const res = await this.op('ListPrefix', 'read', prefix, () =>
      this.client.kv.range({
        key: start,
        range_end: range.end,
        limit: limit > 0 ? limit : 0,
        ...(opts.revision === undefined ? {} : { revision: opts.revision }),
        // No sort options: etcd returns key order anyway, and an explicit sort
        // makes it read the whole range for every page.
      }),
    );
    return {
      kvs: res.kvs.map(toKV),
      revision: Number(res.header.revision),
      more: res.more,
    };
  }

  async list(prefix: string): Promise<{ kvs: KeyValue[]; revision: number }> {
    const kvs: KeyValue[] = [];
    let revision: number | undefined;
    let startAfter: string | undefined;
    for (;;) {
      const page = await this.listPage(prefix, { startAfter, revision });
      revision ??= page.revision;
      kvs.push(...page.kvs);
      const last = page.kvs[page.kvs.length - 1];
      if (!page.more || last === undefined) break;
      startAfter = last.key;
    }
    return { kvs, revision };
  }

  // ---- writes ------------------------------------------------------------

  async put(key: string, value: string, opts?: PutOptions): Promise<void> {
    const lease = await this.leaseFor(key, opts?.lease);
    await this.write(key, lease, () =>
      this.op('Update', 'set', key, () =>
        this.client.kv.put({ key: Buffer.from(key), value: Buffer.from(value), lease }),
      ),
    );
  }

  async createOnly(key: string, value: string, opts?: PutOptions): Promise<boolean> {
    const lease = await this.leaseFor(key, opts?.lease);
    const res = await this.write(key, lease, () =>
      this.op('CreateOnly', 'set', key, () =>
        this.client.kv.txn({
          compare: [
            { key: Buffer.from(key), target: 'Create', result: 'Equal', create_revision: 0 },
          ],
          success: [{ request_put: { key: Buffer.from(key), value: Buffer.from(value), lease } }],
        }),
      ),
    );
    return res.succeeded;
  }

  async updateIfDifferent(key: string, value: string, opts?: PutOptions): Promise<boolean> {
    const lease = await this.leaseFor(key, opts?.lease);
    const k = Buffer.from(key);
    const res = await this.write(key, lease, () =>
      this.op('UpdateIfDifferent', 'set', key, () =>
        this.client.kv.txn({
          compare: [
            { key: k, target: 'Value', result: 'Equal', value: Buffer.from(value) },
            { key: k, target: 'Lease', result: 'Equal', lease },
          ],
          failure: [{ request_put: { key: k, value: Buffer.from(value), lease } }],
        }),
      ),
    );
    return !res.succeeded;
  }

  async delete(key: string): Promise<boolean> {
    this.leases.forget(key);
    const res = await this.op('Delete', 'delete', key, () =>
      this.client.kv.deleteRange({ key: Buffer.from(key) }),
    );
    return Number(res.deleted) > 0;
  }

  async deletePrefix(prefix: string): Promise<number> {
    const range = Range.prefix(prefix);
    const res = await this.op('DeletePrefix', 'delete', prefix, () =>
      this.client.kv.deleteRange({ key: range.start, range_end: range.end }),
    );
    return Number(res.deleted);
  }

  async txn(ops: readonly TxnOp[]): Promise<void> {
    if (ops.length === 0) return;
    await this.transact([], ops);
  }

  async txnIf(compares: readonly ModRevisionCompare[], ops: readonly TxnOp[]): Promise<boolean> {
    return this.transact(compares, ops);
  }

  private async transact(
    compares: readonly ModRevisionCompare[],
    ops: readonly TxnOp[],
  ): Promise<boolean> {
    const reqs: IRequestOp[] = [];
    const leases = new Set<string>();
    for (const op of ops) {
      if (op.kind === 'put' && op.keepLease === true) {
        reqs.push({
          request_put: {
            key: Buffer.from(op.key),
            value: Buffer.from(op.value),
            ignore_lease: true,
          },
        });
      } else if (op.kind === 'put') {
        const lease = await this.leaseFor(op.key, op.lease);
        leases.add(lease);
        reqs.push({
          request_put: { key: Buffer.from(op.key), value: Buffer.from(op.value), lease },
        });
      } else {
        reqs.push({ request_delete_range: { key: Buffer.from(op.key) } });
      }
    }
    const first = ops[0]?.key ?? compares[0]?.key ?? '';
    let res: { succeeded: boolean };
    try {
      res = await this.op('Txn', 'txn', first, () =>
        this.client.kv.txn({
          // etcd compares a missing key's mod revision as 0.
          compare: compares.map((c) => ({
            key: Buffer.from(c.key),
            target: 'Mod',
            result: 'Equal',
            mod_revision: c.modRevision,
          })),
          success: reqs,
        }),
      );
    } catch (err) {
      if (isClusterMeshError(err, ErrorCode.LeaseLost)) {
        for (const l of leases) if (l !== '0') this.leases.invalidate(l);
      }
      throw err;
    }
    if (res.succeeded) for (const op of ops) if (op.kind === 'delete') this.leases.forget(op.key);
    return res.succeeded;
  }

  // ---- watch -------------------------------------------------------------

  listAndWatch(
    prefix: string,
    signal: AbortSignal,
    opts: ListAndWatchOptions = {},
  ): AsyncIterable<WatchEvent> {
    return listAndWatch(
      {
        listPage: (p, o) => this.listPage(p, o),
        watch: (p, from, s) => this.watch(p, from, s),
        clusterId: () => this.pin.clusterId,
      },
      prefix,
      AbortSignal.any([signal, this.abort.signal]),
      { pageSize: this.listLimit, log: this.log, stopOnClusterChange: opts.stopOnClusterChange },
    );
  }

  private async *watch(
    prefix: string,
    fromRevision: number,
    signal: AbortSignal,
  ): AsyncGenerator<readonly RawEvent[]> {
    // An abort listener added to an already-aborted signal never fires.
    if (signal.aborted) return;
    this.throwIfClosed();
    const queue = new AsyncQueue<readonly RawEvent[]>();
    const watcher: Watcher = this.client
      .watch()
      .prefix(prefix)
      .startRevision(String(fromRevision))
      .watcher();
    const checkHeader = (header: IResponseHeader | undefined): boolean => {
      if (header === undefined) return true;
      try {
        this.pin.check(header.cluster_id);
        return true;
      } catch (err) {
        // A different etcd behind the same address: its revisions mean nothing to us.
        queue.fail(err);
        return false;
      }
    };
    watcher.on('connected', (res) => {
      checkHeader(res.header);
    });
    watcher.on('data', (res) => {
      if (!checkHeader(res.header)) return;
      if (res.events.length === 0) return;
      const batch: RawEvent[] = [];
      for (const ev of res.events) {
        const kv = ev.kv;
        batch.push({
          kind: ev.type === 'Delete' ? 'delete' : 'put',
          key: kv.key.toString(),
          value: ev.type === 'Delete' ? '' : kv.value.toString(),
          modRevision: Number(kv.mod_revision),
        });
      }
      queue.push(batch);
    });
    watcher.on('disconnected', (err) => {
      this.pin.failed(
        new ClusterMeshError(ErrorCode.KvstoreUnreachable, `watch disconnected: ${err.message}`),
      );
    });
    const stream = { closedByServer: false };
    watcher.on('error', (err) => {
      stream.closedByServer = true;
      // etcd3 reports compaction as an error with an empty reason; any watch error
      // means the stream may have a gap, so the caller re-lists.
      queue.fail(
        new ClusterMeshError(
          ErrorCode.Compacted,
          `watch on ${prefix} failed: ${err.message === '' ? 'compacted or cancelled' : err.message}`,
        ),
      );
    });
    watcher.on('end', () => {
      stream.closedByServer = true;
      queue.end();
    });
    const onAbort = (): void => {
      queue.end();
    };
    signal.addEventListener('abort', onAbort, { once: true });
    try {
      for await (const batch of queue) yield batch;
    } finally {
      signal.removeEventListener('abort', onAbort);
      // cancel() of a watcher the server already dropped never settles.
      if (!stream.closedByServer) await cancelWatcher(watcher);
    }
  }

  // ---- lock --------------------------------------------------------------

  /**
   * etcd's mutex recipe: a key `<path>/<lease>` under a short lease; the holder is
   * the key with the lowest create revision; waiters watch for deletions.
   */
  async lock(path: string, signal?: AbortSignal): Promise<Lock> {
    const handle = await this.grantLease(LOCK_TTL_SECONDS);
    this.lockLeases.add(handle.id);
    const myKey = `${path}/${handle.id}`;
    const cleanup = async (): Promise<void> => {
      this.lockLeases.delete(handle.id);
      await this.delete(myKey).catch(() => undefined);
      await handle.revoke().catch(() => undefined);
    };
    try {
      await this.op('LockPath', 'set', myKey, () =>
        this.client.kv.put({ key: Buffer.from(myKey), value: Buffer.from(''), lease: handle.id }),
      );
      for (;;) {
        const range = Range.prefix(`${path}/`);
        const res = await this.op('LockPath', 'read', path, () =>
          this.client.kv.range({
            key: range.start,
            range_end: range.end,
            limit: 1,
            sort_order: 'Ascend',
            sort_target: 'Create',
          }),
        );
        const owner = res.kvs[0];
        if (owner === undefined || owner.key.toString() === myKey) break;
        await this.waitForDelete(owner.key.toString(), Number(res.header.revision) + 1, signal);
      }
    } catch (err) {
      await cleanup();
      throw err;
    }
    let released = false;
    return {
      release: async () => {
        if (released) return;
        released = true;
        await cleanup();
      },
    };
  }

  private async waitForDelete(key: string, from: number, signal?: AbortSignal): Promise<void> {
    const w = await this.client.watch().key(key).startRevision(String(from)).create();
    try {
      await new Promise<void>((resolve, reject) => {
        w.on('delete', () => {
          resolve();
        });
        w.on('error', (e) => {
          reject(e);
        });
        signal?.addEventListener(
          'abort',
          () => {
            reject(new ClusterMeshError(ErrorCode.Aborted, `lock ${key}: aborted`));
          },
          { once: true },
        );
        // The holder may already be gone between our range and the watch.
        this.client.kv
          .range({ key: Buffer.from(key) })
          .then((r) => {
            if (r.kvs.length === 0) resolve();
          })
          .catch(reject);
      });
    } finally {
      await cancelWatcher(w);
    }
  }

  // ---- leases ------------------------------------------------------------

  protected async grantLease(ttlSeconds: number): Promise<LeaseHandle> {
    const lease = this.client.lease(ttlSeconds, { autoKeepAlive: true });
    const lost = new Set<() => void>();
    let isLost = false;
    lease.on('lost', (err) => {
      isLost = true;
      this.log.warn({ err: err.message }, 'etcd lease lost');
      for (const l of lost) l();
    });
    try {
      const { id } = await this.op('Grant', 'lease', '', async () => ({
        id: await lease.grant(),
        header: undefined,
      }));
      return {
        id,
        onLost: (l) => {
          if (isLost) l();
          else lost.add(l);
        },
        release: () => {
          lease.release();
        },
        revoke: () => lease.revoke(),
      };
    } catch (err) {
      lease.release();
      throw err;
    }
  }

  // ---- status & lifecycle ------------------------------------------------

  status(): BackendStatus {
    const eps = this.opts.endpoints;
    return this.sessionStatus(
      eps,
      (connected) =>
        `etcd: ${connected ? eps.length : 0}/${eps.length} connected, leases=${this.leases.size}, ` +
        `lock leases=${this.lockLeases.size}, has-quorum=${connected ? 'true' : 'false'}: ` +
        eps.join('; ') +
        (this.pin.clusterId === undefined
          ? ''
          : `, ID: ${BigInt(this.pin.clusterId).toString(16)}`),
    );
  }

  protected closeClient(): void {
    this.client.close();
  }
}

function toKV(kv: {
  key: Buffer;
  value: Buffer;
  mod_revision: string;
  create_revision: string;
  lease: string;
}): KeyValue {
  return {
    key: kv.key.toString(),
    value: kv.value.toString(),
    modRevision: Number(kv.mod_revision),
    createRevision: Number(kv.create_revision),
    lease: kv.lease === '0' ? undefined : kv.lease,
  };
}

/** Cancels a watcher without ever hanging the caller on a lost stream. */
async function cancelWatcher(w: Watcher): Promise<void> {
  let timer: NodeJS.Timeout | undefined;
  await Promise.race([
    w.cancel().catch(() => undefined),
    new Promise<void>((resolve) => {
      timer = setTimeout(resolve, 2000);
    }),
  ]);
  clearTimeout(timer);
}

/**
 * What is wrong with our own client certificate, when something is: a server's alert says
 * only "bad certificate", whatever the cause.
 */
function clientCertProblem(tls: EtcdTls | undefined, rejected: boolean): string {
  if (tls?.cert === undefined) return '';
  let cert: X509Certificate;
  try {
    cert = new X509Certificate(tls.cert);
  } catch {
    return '; the client certificate (cert-file) is not a PEM certificate';
  }
  const now = Date.now();
  if (Date.parse(cert.validTo) < now) {
    return `; the client certificate expired on ${new Date(cert.validTo).toISOString().slice(0, 10)}`;
  }
  if (Date.parse(cert.validFrom) > now) return '; the client certificate is not valid yet';
  // Whom the client certificate was issued by matters only when the server refused it.
  if (rejected && tls.ca !== undefined) {
    try {
      const ca = new X509Certificate(tls.ca);
      if (!cert.checkIssued(ca) || !cert.verify(ca.publicKey)) {
        return `; the client certificate (issuer ${oneLine(cert.issuer)}) is not signed by the CA in trusted-ca-file (${oneLine(ca.subject)})`;
      }
    } catch {
      // An unreadable CA is reported by the handshake itself.
    }
  }
  return '';
}

function oneLine(dn: string): string {
  return dn.replace(/\n/g, ', ');
}

function rejectedByServer(msg: string): boolean {
  return /alert (bad certificate|certificate required|unknown ca|certificate unknown)/i.test(msg);
}

/**
 * The reason inside gRPC's "14 UNAVAILABLE: No connection established. Last error: …",
 * without OpenSSL's error-stack noise, plus which side refused.
 */
function tlsReason(msg: string): string {
  const last = /Last error: (?:Error: )?(.*?)\.?(?: Resolution note:.*)?$/s.exec(msg)?.[1];
  if (last === undefined) return shorten(msg);
  // OpenSSL: "<hex>:error:<code>:SSL routines:<function>:<reason>:<file>:<line>:SSL alert number N"
  const reason = /SSL routines:[^:]*:([^:]+)/.exec(last)?.[1] ?? last;
  if (/alert (bad certificate|certificate required|unknown ca|certificate unknown)/i.test(reason)) {
    return `${shorten(reason)} (the server rejected the client certificate)`;
  }
  if (/verify|self[- ]signed|issuer|unknown ca/i.test(reason)) {
    return `${shorten(reason)} (the server certificate is not trusted by the configured CA)`;
  }
  return shorten(reason);
}

function shorten(msg: string): string {
  // grpc-js appends an often empty "Resolution note:" that only adds noise.
  return msg
    .replace(/\s*Resolution note:\s*$/i, '')
    .replace(/\s+/g, ' ')
    .trim()
    .slice(0, 300);
}
