/**
 * The apiserver's external-workload mode. It watches the registrations VMs write at
 * `cilium/state/noderegister/v1/<name>` and validates each against the
 * CiliumExternalWorkload of that name. An accepted VM gets its identity (allocated from the
 * workload's labels inside the cluster's range, so a restart finds the same one), a
 * CiliumNode and a CiliumEndpoint (which the apiserver's own synchronizers then export, so
 * every cluster's ipcache and identity list learn the VM), EndpointSlices for the Services
 * selecting it, and the workload's status. A refused one gets a one-line reason in its
 * registration key, a log line and a count, and nothing else: the checks run before
 * anything is written. Deleting the workload removes everything it was given.
 */
import { Counter, type Registry as MetricsRegistry } from 'prom-client';
import type { Logger } from 'pino';
import type { Backend, KeyValue } from '../kvstore/backend.js';
import { sleep } from '../lib/abort.js';
import { errorMessage } from '../lib/errors.js';
import { createInformer } from '../registry/informer.js';
import {
  SERVICE_NAME_LABEL,
  type CiliumExternalWorkload,
  type EndpointSlice,
  type Service,
} from '../registry/objects.js';
import { Registry } from '../registry/registry.js';
import type {
  CiliumEndpoint,
  CiliumIdentity,
  CiliumNode,
  Informer,
  OwnerReference,
} from '../registry/types.js';
import { IdentityAllocator } from '../workloads/identity-allocator.js';
import {
  REGISTRATION_PREFIX,
  decodeRegistration,
  encodeRegistration,
  registrationIPs,
  registrationKey,
  registrationName,
  type Registration,
} from './registration.js';
import { followRejectedConnections, type RejectedConnection } from './tls-refusals.js';
import {
  CEW_API_VERSION,
  RefusalReason,
  validateRegistration,
  workloadIdentityLabels,
  workloadNamespace,
} from './workload.js';

/** Labels every object written for a workload carries: its name, and who manages it. */
export const WORKLOAD_NAME_LABEL = 'externalworkload.cilium.io/name';
export const SLICE_MANAGER = 'externalworkload-controller.cilium.io';
const MANAGED_BY_LABEL = 'endpointslice.kubernetes.io/managed-by';

export interface ExternalWorkloadControllerOptions {
  readonly backend: Backend;
  readonly cluster: { readonly name: string; readonly id: number };
  readonly log: Logger;
  /** The daemon's metrics registry: registrations are counted there. */
  readonly metrics: MetricsRegistry;
  /** Pause before a failed step is retried (default 1 s). */
  readonly retryMs?: number | undefined;
  /**
   * The log of the cluster's etcd, when it runs beside this apiserver: the TLS handshakes
   * it rejects are counted and logged as refusals (src/externalworkload/tls-refusals.ts).
   */
  readonly etcdLogFile?: string | undefined;
}

type WorkItem =
  | { readonly kind: 'registration'; readonly name: string; readonly kv: KeyValue }
  | { readonly kind: 'unregistered'; readonly name: string }
  | { readonly kind: 'sync'; readonly name: string };

export class ExternalWorkloadController {
  private readonly registry: Registry;
  private readonly log: Logger;
  private readonly allocator: IdentityAllocator;
  private readonly registrations: Counter;
  private readonly cews: Informer<CiliumExternalWorkload>;
  private readonly ceps: Informer<CiliumEndpoint>;
  private readonly services: Informer<Service>;
  private readonly slices: Informer<EndpointSlice>;
  private readonly identities: Informer<CiliumIdentity>;
  /** The current value of every registration key, by workload name. */
  private readonly current = new Map<string, KeyValue>();
  private readonly queue: WorkItem[] = [];
  private wake: (() => void) | undefined;
  private watchSynced = false;

  constructor(private readonly opts: ExternalWorkloadControllerOptions) {
    this.log = opts.log.child({ subsys: 'external-workloads' });
    this.registry = new Registry(opts.backend, { log: this.log });
    this.allocator = new IdentityAllocator(this.registry, opts.cluster, this.log);
    this.registrations = new Counter({
      name: 'cilium_clustermesh_apiserver_external_workload_registrations_total',
      help: 'External workload registrations processed, by outcome and refusal reason',
      labelNames: ['outcome', 'reason'],
      registers: [opts.metrics],
    });
    const log = { log: this.log };
    this.cews = createInformer(
      opts.backend,
      'CiliumExternalWorkload',
      { onEvent: (ev) => this.push({ kind: 'sync', name: ev.object.metadata.name }) },
      log,
    );
    this.ceps = createInformer(opts.backend, 'CiliumEndpoint', { onEvent: () => undefined }, log);
    this.slices = createInformer(opts.backend, 'EndpointSlice', { onEvent: () => undefined }, log);
    this.services = createInformer(
      opts.backend,
      'Service',
      {
        onEvent: () => {
          for (const name of this.current.keys()) this.push({ kind: 'sync', name });
        },
      },
      log,
    );
    this.identities = createInformer(
      opts.backend,
      'CiliumIdentity',
      {
        onEvent: (ev) => {
          this.allocator.observe(ev);
        },
      },
      log,
    );
  }

  /** Registrations accepted and refused so far (tests, status). */
  async counts(): Promise<{ accepted: number; refused: Record<string, number> }> {
    const m = await this.registrations.get();
    const refused: Record<string, number> = {};
    let accepted = 0;
    for (const v of m.values) {
      if (v.labels.outcome === 'accepted') accepted += v.value;
      else refused[String(v.labels.reason)] = (refused[String(v.labels.reason)] ?? 0) + v.value;
    }
    return { accepted, refused };
  }

  async run(signal: AbortSignal): Promise<void> {
    const informers = [this.cews, this.ceps, this.services, this.slices, this.identities];
    await Promise.all([
      ...informers.map((i) => i.run(signal)),
      this.watch(signal),
      this.work(informers, signal),
      ...(this.opts.etcdLogFile === undefined
        ? []
        : [
            followRejectedConnections(
              { file: this.opts.etcdLogFile, onRefusal: (r) => this.refuseConnection(r) },
              signal,
            ),
          ]),
    ]);
  }

  /** A client etcd refused at the TLS handshake: nothing was written, so nothing to undo. */
  private refuseConnection(r: RejectedConnection): void {
    this.registrations.inc({ outcome: 'refused', reason: RefusalReason.BadCertificate });
    this.log.warn(
      { remote: r.remoteAddr, reason: RefusalReason.BadCertificate, err: r.error },
      `External workload connection refused by etcd: ${r.error.slice(0, 160)}`,
    );
  }

  private push(item: WorkItem): void {
    if (item.kind === 'sync' && this.queue.some((q) => q.kind === 'sync' && q.name === item.name)) {
      return;
    }
    this.queue.push(item);
    this.wake?.();
  }

  private async watch(signal: AbortSignal): Promise<void> {
    try {
      for await (const ev of this.opts.backend.listAndWatch(REGISTRATION_PREFIX, signal)) {
        if (ev.kind === 'listDone') {
          this.watchSynced = true;
          continue;
        }
        const name = registrationName(ev.key);
        if (name === undefined) continue;
        if (ev.kind === 'delete') {
          this.current.delete(name);
          this.push({ kind: 'unregistered', name });
          continue;
        }
        const kv: KeyValue = {
          key: ev.key,
          value: ev.value,
          modRevision: ev.modRevision,
          createRevision: 0,
        };
        this.current.set(name, kv);
        this.push({ kind: 'registration', name, kv });
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  private async work(
    informers: readonly { readonly hasSynced: boolean }[],
    signal: AbortSignal,
  ): Promise<void> {
    try {
      while (!(this.watchSynced && informers.every((i) => i.hasSynced))) await sleep(20, signal);
      // What existed before this run: workloads deleted meanwhile are cleaned up too.
      for (const cew of this.cews.list()) this.push({ kind: 'sync', name: cew.metadata.name });
      for (;;) {
        if (signal.aborted) return;
        const item = this.queue.shift();
        if (item === undefined) {
          await new Promise<void>((resolve) => {
            this.wake = resolve;
            signal.addEventListener('abort', () => resolve(), { once: true });
          });
          this.wake = undefined;
          continue;
        }
        try {
          await this.process(item);
        } catch (err) {
          if (isAborted(signal)) return;
          this.log.warn(
            { workload: item.name, step: item.kind, err: errorMessage(err) },
            'External workload reconciliation failed; retrying',
          );
          await sleep(this.opts.retryMs ?? 1000, signal);
          this.push(item.kind === 'registration' ? { kind: 'sync', name: item.name } : item);
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  private async process(item: WorkItem): Promise<void> {
    switch (item.kind) {
      case 'registration':
        return this.onRegistration(item.name, item.kv);
      case 'unregistered':
        return this.onUnregistered(item.name);
      case 'sync':
        return this.sync(item.name);
    }
  }

  // ---- registrations ----

  private async onRegistration(name: string, kv: KeyValue): Promise<void> {
    let reg: Registration;
    try {
      reg = decodeRegistration(name, kv.value);
    } catch (err) {
      await this.refuse(name, kv, undefined, RefusalReason.InvalidRegistration, errorMessage(err));
      return;
    }
    // Our own answers come back through the watch.
    if (reg.refused !== undefined) return;
    if (reg.node.NodeIdentity !== 0) {
      await this.sync(name);
      return;
    }
    if (reg.node.Cluster !== this.opts.cluster.name) {
      await this.refuse(
        name,
        kv,
        reg,
        RefusalReason.InvalidRegistration,
        `registration names cluster ${JSON.stringify(reg.node.Cluster.slice(0, 80))}, this is ${this.opts.cluster.name}`,
      );
      return;
    }
    const cew = this.cews.get(undefined, name);
    const verdict = validateRegistration(
      { name, ips: registrationIPs(reg.node) },
      { workload: cew, ownerOf: (ip) => this.ownerOf(ip, name) },
    );
    if (!verdict.ok || cew === undefined) {
      const why = verdict.ok
        ? { reason: RefusalReason.UnknownWorkload, message: `no workload ${name}` }
        : verdict;
      await this.refuse(name, kv, reg, why.reason, why.message);
      return;
    }
    const identity = await this.provide(cew, verdict.ip);
    // The answer keeps the VM's lease: a VM that dies without unregistering loses its key
    // when the lease runs out, which is what flips it to disconnected.
    const answered = await this.opts.backend.txnIf(
      [{ key: kv.key, modRevision: kv.modRevision }],
      [
        {
          kind: 'put',
          key: kv.key,
          value: encodeRegistration({ node: { ...reg.node, NodeIdentity: identity } }),
          keepLease: true,
        },
      ],
    );
    await this.patchStatus(name, {
      id: identity,
      ip: verdict.ip,
      registered: true,
      connected: true,
    });
    await this.syncSlices(name);
    this.registrations.inc({ outcome: 'accepted', reason: '' });
    this.log.info(
      { workload: name, ip: verdict.ip, identity, answered },
      'External workload registered',
    );
  }

  private async refuse(
    name: string,
    kv: KeyValue,
    reg: Registration | undefined,
    reason: RefusalReason,
    message: string,
  ): Promise<void> {
    const ip = reg === undefined ? '' : (registrationIPs(reg.node)[0] ?? '');
    this.registrations.inc({ outcome: 'refused', reason });
    this.log.warn(
      { workload: name, ip, reason },
      `External workload registration refused: ${message}`,
    );
    // The answer goes where the VM looks; a newer registration meanwhile is left alone.
    const ops =
      reg === undefined
        ? [{ kind: 'delete' as const, key: kv.key }]
        : [
            {
              kind: 'put' as const,
              key: kv.key,
              value: encodeRegistration({ node: reg.node, refused: message }),
              keepLease: true,
            },
          ];
    await this.opts.backend.txnIf([{ key: kv.key, modRevision: kv.modRevision }], ops);
    if (this.cews.get(undefined, name) !== undefined) {
      await this.patchStatus(name, { refused: `${ip === '' ? '?' : ip}: ${message}` });
    }
  }

  private async onUnregistered(name: string): Promise<void> {
    if (this.cews.get(undefined, name)?.status?.connected === true) {
      await this.patchStatus(name, { connected: false });
      this.log.info({ workload: name }, 'External workload disconnected');
    }
    await this.syncSlices(name);
  }

  /** Who else holds `ip`: another registered workload, or an endpoint not of this workload. */
  private ownerOf(ip: string, name: string): string | undefined {
    for (const other of this.cews.list()) {
      const st = other.status;
      if (other.metadata.name !== name && st?.registered === true && st.ip === ip) {
        return `external workload ${other.metadata.name}`;
      }
    }
    for (const cep of this.ceps.list()) {
      const held = cep.status.networking?.addressing.some((a) => a.ipv4 === ip) === true;
      if (held && !ownedBy(cep, name)) {
        return `endpoint ${cep.metadata.namespace ?? 'default'}/${cep.metadata.name}`;
      }
    }
    return undefined;
  }

  // ---- what an accepted workload gets ----

  /** Identity, CiliumNode and CiliumEndpoint of a workload at `ip`; returns the identity. */
  private async provide(cew: CiliumExternalWorkload, ip: string): Promise<number> {
    const name = cew.metadata.name;
    const identity = await this.allocator.allocate(
      workloadIdentityLabels(cew, this.opts.cluster.name),
    );
    const owner = ownerRef(cew);
    const labels = { [WORKLOAD_NAME_LABEL]: name };
    const cidr = cew.spec['ipv4-alloc-cidr'];
    const node: CiliumNode = {
      apiVersion: CEW_API_VERSION,
      kind: 'CiliumNode',
      metadata: { name, labels, ownerReferences: [owner] },
      spec: {
        addresses: [{ type: 'InternalIP', ip }],
        ...(cidr === undefined ? {} : { ipam: { podCIDRs: [cidr] } }),
        encryption: { key: 0 },
      },
    };
    const namespace = workloadNamespace(cew);
    const endpoint: CiliumEndpoint = {
      apiVersion: CEW_API_VERSION,
      kind: 'CiliumEndpoint',
      metadata: { name, namespace, labels: { ...cew.metadata.labels }, ownerReferences: [owner] },
      status: {
        // The VM is its own node: its one endpoint is the first there.
        id: 1,
        identity: { id: identity.id, labels: identity.labels },
        networking: { addressing: [{ ipv4: ip }], node: ip },
        encryption: { key: 0 },
        state: 'ready',
      },
    };
    // An endpoint left in another namespace by an earlier label set goes first.
    for (const cep of this.ceps.list()) {
      if (ownedBy(cep, name) && (cep.metadata.namespace ?? 'default') !== namespace) {
        await this.registry.delete('CiliumEndpoint', cep.metadata.namespace, name);
      }
    }
    await this.registry.apply([node, endpoint]);
    return identity.id;
  }

  /**
   * Brings everything of workload `name` in line with its object and its registration:
   * after a label change, a Service change, a restart of this daemon, or its deletion.
   */
  private async sync(name: string): Promise<void> {
    const cew = this.cews.get(undefined, name);
    const kv = this.current.get(name);
    if (cew === undefined) {
      await this.cleanup(name, kv);
      return;
    }
    let reg: Registration | undefined;
    try {
      reg = kv === undefined ? undefined : decodeRegistration(name, kv.value);
    } catch {
      reg = undefined;
    }
    const accepted = reg !== undefined && reg.refused === undefined && reg.node.NodeIdentity !== 0;
    const ip = reg === undefined ? undefined : registrationIPs(reg.node)[0];
    if (kv !== undefined && reg !== undefined && accepted && ip !== undefined) {
      const identity = await this.provide(cew, ip);
      if (identity !== reg.node.NodeIdentity) {
        await this.opts.backend.txnIf(
          [{ key: kv.key, modRevision: kv.modRevision }],
          [
            {
              kind: 'put',
              key: kv.key,
              value: encodeRegistration({ node: { ...reg.node, NodeIdentity: identity } }),
              keepLease: true,
            },
          ],
        );
      }
      await this.patchStatus(name, { id: identity, ip, registered: true, connected: true });
    } else if (kv === undefined && cew.status?.connected === true) {
      await this.patchStatus(name, { connected: false });
    }
    await this.syncSlices(name);
  }

  /** A deleted workload: its node, endpoint, slices, unused identity and registration go. */
  private async cleanup(name: string, kv: KeyValue | undefined): Promise<void> {
    const node = await this.registry.get('CiliumNode', undefined, name);
    if (node !== undefined && node.metadata.labels?.[WORKLOAD_NAME_LABEL] === name) {
      await this.registry.delete('CiliumNode', undefined, name);
    }
    const identities = new Set<number>();
    for (const cep of this.ceps.list()) {
      if (!ownedBy(cep, name)) continue;
      const id = cep.status.identity?.id;
      if (id !== undefined) identities.add(id);
      await this.registry.delete('CiliumEndpoint', cep.metadata.namespace, cep.metadata.name);
    }
    await this.syncSlices(name, true);
    for (const id of identities) {
      const used = this.ceps.list().some((c) => !ownedBy(c, name) && c.status.identity?.id === id);
      if (!used) await this.registry.delete('CiliumIdentity', undefined, String(id));
    }
    if (kv !== undefined) {
      // The VM finds its registration gone, registers again and is told why it is refused.
      await this.opts.backend.txnIf(
        [{ key: kv.key, modRevision: kv.modRevision }],
        [{ kind: 'delete', key: registrationKey(name) }],
      );
    }
    if (node !== undefined || identities.size > 0) {
      this.log.info(
        { workload: name },
        'External workload deleted: its node, endpoint and identity removed',
      );
    }
  }

  private async patchStatus(
    name: string,
    fields: NonNullable<CiliumExternalWorkload['status']>,
  ): Promise<void> {
    await this.registry.patch('CiliumExternalWorkload', undefined, name, (cur) => {
      const next = { ...cur.status, ...fields };
      if (JSON.stringify(next) === JSON.stringify(cur.status ?? {})) return undefined;
      return { ...cur, status: next };
    });
  }

  // ---- Services selecting a workload ----

  /**
   * One EndpointSlice per Service selecting a connected workload, its address ready;
   * none once it disconnects (or `gone`).
   */
  private async syncSlices(name: string, gone = false): Promise<void> {
    const cew = gone ? undefined : this.cews.get(undefined, name);
    const kv = this.current.get(name);
    let ip: string | undefined;
    try {
      const reg = kv === undefined ? undefined : decodeRegistration(name, kv.value);
      if (reg !== undefined && reg.refused === undefined && reg.node.NodeIdentity !== 0) {
        ip = registrationIPs(reg.node)[0];
      }
    } catch {
      ip = undefined;
    }
    const want = new Map<string, EndpointSlice>();
    if (cew !== undefined && ip !== undefined) {
      const namespace = workloadNamespace(cew);
      const labels = cew.metadata.labels ?? {};
      for (const svc of this.services.list()) {
        const sel = svc.spec.selector;
        if ((svc.metadata.namespace ?? 'default') !== namespace) continue;
        if (sel === undefined || Object.keys(sel).length === 0) continue;
        if (!Object.entries(sel).every(([k, v]) => labels[k] === v)) continue;
        const slice = workloadSlice(svc, cew, ip);
        want.set(`${namespace}/${slice.metadata.name}`, slice);
      }
    }
    const have = this.slices
      .list()
      .filter(
        (s) =>
          s.metadata.labels?.[MANAGED_BY_LABEL] === SLICE_MANAGER &&
          s.metadata.labels[WORKLOAD_NAME_LABEL] === name,
      );
    for (const s of have) {
      if (!want.has(`${s.metadata.namespace ?? 'default'}/${s.metadata.name}`)) {
        await this.registry.delete('EndpointSlice', s.metadata.namespace, s.metadata.name);
      }
    }
    if (want.size > 0) await this.registry.apply([...want.values()]);
  }
}

/** Read through a call: the flow analysis would take the flag for constant inside a loop. */
function isAborted(signal: AbortSignal): boolean {
  return signal.aborted;
}

function ownerRef(cew: CiliumExternalWorkload): OwnerReference {
  return {
    apiVersion: CEW_API_VERSION,
    kind: 'CiliumExternalWorkload',
    name: cew.metadata.name,
    uid: cew.metadata.uid ?? '',
    controller: true,
  };
}

function ownedBy(obj: CiliumEndpoint, name: string): boolean {
  return (
    obj.metadata.ownerReferences?.some(
      (r) => r.kind === 'CiliumExternalWorkload' && r.name === name,
    ) === true
  );
}

/** The slice listing workload `cew` at `ip` for `svc`: its ports' numeric targets. */
export function workloadSlice(
  svc: Service,
  cew: CiliumExternalWorkload,
  ip: string,
): EndpointSlice {
  const name = cew.metadata.name;
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name: `${svc.metadata.name}-vm-${name}`.slice(0, 253),
      namespace: svc.metadata.namespace ?? 'default',
      labels: {
        [SERVICE_NAME_LABEL]: svc.metadata.name,
        [MANAGED_BY_LABEL]: SLICE_MANAGER,
        [WORKLOAD_NAME_LABEL]: name,
      },
    },
    addressType: 'IPv4',
    endpoints: [
      {
        addresses: [ip],
        conditions: { ready: true, serving: true, terminating: false },
        nodeName: name,
        targetRef: { kind: 'CiliumExternalWorkload', name },
      },
    ],
    ports: svc.spec.ports.flatMap((p) => {
      const target = p.targetPort ?? p.port;
      // A named target port means a container port; a VM declares none.
      if (typeof target !== 'number') return [];
      return [
        { ...(p.name === undefined ? {} : { name: p.name }), port: target, protocol: p.protocol },
      ];
    }),
  };
}
