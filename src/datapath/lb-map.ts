/**
 * The node's load-balancer map: what the reference keeps in its BPF LB maps, here one
 * ServiceLB (Maglev + affinity) per frontend, looked up per new connection. The
 * service table merges local and remote backends on every read, which is too costly
 * per connection, so this map holds a merged copy and refreshes only the service
 * whose change the table reports.
 */
import type { Logger } from 'pino';
import { ServiceLB, type FlowKey, type ServiceLBOptions } from '../service/backend-choice.js';
import type { ServiceTable, TableBackend, TableFrontend } from '../service/table.js';
import type { FlowService } from './flows.js';
import type { BackendHealth } from './health.js';

export interface LbFrontend {
  /** `ip:port/PROTO`, as in the service table. */
  readonly key: string;
  readonly id: number;
  /** `namespace/name` */
  readonly serviceId: string;
  readonly ip: string;
  readonly port: number;
  readonly protocol: string;
  type: string;
  /** Shared by every flow through this frontend (flows are immutable). */
  readonly service: FlowService;
  readonly lb: ServiceLB;
  /** All backends of the table (the LB's selection set is a subset). */
  backends: readonly TableBackend[];
}

export interface FrontendAddress {
  readonly key: string;
  readonly ip: string;
  readonly port: number;
  readonly protocol: string;
  /**
   * Every backend is the frontend's own address: a server listening on the ClusterIP
   * itself (kube-dns on the cluster DNS server). Nothing to translate, and a proxy bound
   * there would take the server's port.
   */
  readonly selfBacked: boolean;
}

function isSelfBacked(f: LbFrontend): boolean {
  return f.backends.length > 0 && f.backends.every((b) => b.ip === f.ip && b.port === f.port);
}

/** `removed`: the frontends (`ip:port/proto`) that went away in this change. */
export type FrontendsChangedListener = (removed: readonly string[]) => void;

export function frontendKey(ip: string, port: number, protocol: string): string {
  return ip.includes(':') ? `[${ip}]:${port}/${protocol}` : `${ip}:${port}/${protocol}`;
}

export class LoadBalancerMap {
  private readonly byKey = new Map<string, LbFrontend>();
  private readonly byService = new Map<string, Set<string>>();
  private readonly listeners = new Set<FrontendsChangedListener>();
  private readonly unsubscribe: () => void;
  private readonly unsubscribeHealth: (() => void) | undefined;
  private closed = false;
  private readonly lbOptions: ServiceLBOptions;
  /** A pending health-target sync: one per event-loop turn however many services changed. */
  private targetsTimer: NodeJS.Immediate | undefined;

  constructor(
    private readonly services: ServiceTable,
    private readonly log: Logger,
    lbOptions: ServiceLBOptions = {},
    readonly health?: BackendHealth,
  ) {
    const h = health;
    this.lbOptions =
      h === undefined ? lbOptions : { ...lbOptions, isHealthy: (a) => h.isHealthy(a) };
    this.unsubscribe = services.onChange((id) => {
      this.refresh(id);
    });
    this.unsubscribeHealth = h?.onChange((address) => {
      this.healthChanged(address);
    });
    const ids = new Set<string>();
    for (const f of services.frontends()) ids.add(`${f.namespace}/${f.name}`);
    for (const id of ids) this.refresh(id, false);
    this.syncTargets();
  }

  /** Another backend for a flow whose connection to `failed` did not succeed. */
  alternative(frontend: LbFrontend, flow: FlowKey, failed: string): TableBackend | undefined {
    return frontend.lb.alternative(flow, failed) as TableBackend | undefined;
  }

  /** The frontend on `ip:port/proto`, O(1). */
  lookup(ip: string, port: number, protocol = 'TCP'): LbFrontend | undefined {
    return this.byKey.get(frontendKey(ip, port, protocol));
  }

  /** The backend a new flow to `frontend` goes to, or undefined when none can take it. */
  select(frontend: LbFrontend, flow: FlowKey): TableBackend | undefined {
    // The LB was built from `frontend.backends`, so it hands back those very objects.
    return frontend.lb.select(flow) as TableBackend | undefined;
  }

  frontendAddresses(): FrontendAddress[] {
    const out: FrontendAddress[] = [];
    for (const f of this.byKey.values()) {
      out.push({
        key: f.key,
        ip: f.ip,
        port: f.port,
        protocol: f.protocol,
        selfBacked: isSelfBacked(f),
      });
    }
    return out;
  }

  frontends(): readonly LbFrontend[] {
    return [...this.byKey.values()];
  }

  get size(): number {
    return this.byKey.size;
  }

  /**
   * Called after frontends appear or disappear, or become (or stop being) served directly
   * by their own address; not on other backend changes.
   */
  onFrontendsChanged(cb: FrontendsChangedListener): () => void {
    this.listeners.add(cb);
    return () => this.listeners.delete(cb);
  }

  close(): void {
    if (this.closed) return;
    this.closed = true;
    clearImmediate(this.targetsTimer);
    this.targetsTimer = undefined;
    this.unsubscribe();
    this.unsubscribeHealth?.();
    this.listeners.clear();
    this.byKey.clear();
    this.byService.clear();
  }

  private refresh(serviceId: string, notify = true): void {
    if (this.closed) return;
    const now = this.services.frontendsOf(serviceId);
    const before = this.byService.get(serviceId) ?? new Set<string>();
    const after = new Set<string>();
    let changed = false;
    for (const f of now) {
      const cur = this.byKey.get(f.frontend);
      if (cur !== undefined && cur.serviceId !== serviceId) {
        // Two Services claiming one ClusterIP:port is an apiserver bug; the first keeps it.
        this.log.warn(
          { frontend: f.frontend, service: serviceId, owner: cur.serviceId },
          'Frontend already claimed by another service; ignored',
        );
        continue;
      }
      after.add(f.frontend);
      if (cur === undefined) {
        this.byKey.set(f.frontend, this.build(serviceId, f));
        changed = true;
      } else {
        const wasSelfBacked = isSelfBacked(cur);
        cur.lb.update(f.backends);
        cur.backends = f.backends;
        cur.type = f.type;
        // Whether the address is served directly decides whether a proxy listens on it.
        if (isSelfBacked(cur) !== wasSelfBacked) changed = true;
      }
    }
    const removed: string[] = [];
    for (const key of before) {
      if (after.has(key)) continue;
      this.byKey.delete(key);
      removed.push(key);
      changed = true;
    }
    if (after.size === 0) this.byService.delete(serviceId);
    else this.byService.set(serviceId, after);
    if (notify) this.scheduleSyncTargets();
    if (changed && notify) for (const l of this.listeners) l(removed);
  }

  /**
   * The target set spans every frontend: rebuilt once per turn, not once per changed
   * service (thousands of services changing in one burst would make that quadratic).
   */
  private scheduleSyncTargets(): void {
    if (this.health === undefined || this.closed || this.targetsTimer !== undefined) return;
    this.targetsTimer = setImmediate(() => {
      this.targetsTimer = undefined;
      this.syncTargets();
    });
  }

  /** Every backend of the map is watched by the health checker. */
  private syncTargets(): void {
    if (this.health === undefined || this.closed) return;
    const targets = new Map<string, TableBackend>();
    for (const f of this.byKey.values()) for (const b of f.backends) targets.set(b.address, b);
    this.health.setTargets(targets.values());
  }

  private healthChanged(address: string): void {
    if (this.closed) return;
    for (const f of this.byKey.values()) {
      if (f.backends.some((b) => b.address === address)) f.lb.refreshHealth();
    }
  }

  private build(serviceId: string, f: TableFrontend): LbFrontend {
    return {
      key: f.frontend,
      id: f.id,
      serviceId,
      ip: f.ip,
      port: f.port,
      protocol: f.protocol,
      type: f.type,
      service: { namespace: f.namespace, name: f.name, frontend: f.frontend },
      lb: new ServiceLB(f.backends, this.lbOptions),
      backends: f.backends,
    };
  }
}
