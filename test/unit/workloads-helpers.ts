import assert from 'node:assert/strict';
import { request } from 'node:http';
import { connect } from 'node:net';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { createLogger } from '../../src/lib/logger.js';
import type { Pod } from '../../src/registry/objects.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { Registry } from '../../src/registry/registry.js';
import {
  ClusterRuntime,
  type ExecProbeRunner,
  type RuntimeNode,
  type WorkloadConnection,
} from '../../src/workloads/cluster-runtime.js';

/** Shared by the workloads suites; each suite uses its own 127.<id>.0.0/16. */

export const log = createLogger({ test: 'workloads' });

export function plan(id: number): {
  cluster: { name: string; id: number };
  nodes: RuntimeNode[];
  serviceCIDR: string;
} {
  return {
    cluster: { name: `cluster${id}`, id },
    nodes: [1, 2].map((n) => ({
      name: `cluster${id}-node${n}`,
      ip: `127.${id}.0.${n}`,
      podCIDR: `127.${id}.${n}.0/24`,
    })),
    serviceCIDR: `127.${id}.128.0/17`,
  };
}

export interface Harness {
  readonly backend: MemoryBackend;
  readonly registry: Registry;
  readonly runtime: ClusterRuntime;
  readonly connections: WorkloadConnection[];
}

export async function startRuntime(
  id: number,
  opts: {
    backend?: MemoryBackend;
    nodes?: RuntimeNode[];
    reservedServiceIPs?: string[];
    execProbe?: ExecProbeRunner;
    restartBackoff?: { initialMs: number; maxMs: number };
  } = {},
): Promise<Harness> {
  const p = plan(id);
  const backend = opts.backend ?? new MemoryBackend(new MemoryStore());
  const connections: WorkloadConnection[] = [];
  const runtime = new ClusterRuntime({
    cluster: p.cluster,
    nodes: opts.nodes ?? p.nodes,
    backend,
    serviceCIDR: p.serviceCIDR,
    reservedServiceIPs: opts.reservedServiceIPs,
    execProbe: opts.execProbe,
    restartBackoff: opts.restartBackoff,
    log,
    onConnection: (c) => {
      connections.push(c);
      return true;
    },
  });
  await runtime.start();
  return { backend, registry: new Registry(backend), runtime, connections };
}

/** Manifests as users write them (the registry applies the defaults). */
export function deployment(
  name: string,
  replicas: number,
  container: Record<string, unknown>,
  labels: Record<string, string> = { app: name },
): RegistryObject {
  return {
    apiVersion: 'apps/v1',
    kind: 'Deployment',
    metadata: { name },
    spec: {
      replicas,
      selector: { matchLabels: labels },
      template: { metadata: { labels }, spec: { containers: [{ name: 'main', ...container }] } },
    },
  };
}

export function pod(
  name: string,
  spec: Record<string, unknown>,
  labels?: Record<string, string>,
): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, ...(labels === undefined ? {} : { labels }) },
    spec,
  };
}

export function service(name: string, spec: Record<string, unknown>): RegistryObject {
  return { apiVersion: 'v1', kind: 'Service', metadata: { name }, spec };
}

export { eventually } from '../support/eventually.js';

export interface HttpAnswer {
  readonly status: number;
  readonly contentType: string;
  readonly text: string;
  readonly json: Record<string, unknown>;
}

/** One GET without keep-alive, optionally from a given source address. */
export function httpGet(ip: string, port: number, localAddress?: string): Promise<HttpAnswer> {
  return new Promise((resolve, reject) => {
    const req = request(
      { host: ip, port, path: '/', method: 'GET', agent: false, localAddress, timeout: 5_000 },
      (res) => {
        let text = '';
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => (text += chunk));
        res.on('end', () => {
          try {
            resolve({
              status: res.statusCode ?? 0,
              contentType: res.headers['content-type'] ?? '',
              text,
              json: JSON.parse(text) as Record<string, unknown>,
            });
          } catch (err) {
            reject(err instanceof Error ? err : new Error(String(err)));
          }
        });
      },
    );
    req.on('timeout', () => req.destroy(new Error('timeout')));
    req.on('error', reject);
    req.end();
  });
}

/** Resolves to the connect error code (`ECONNREFUSED`), or 'connected'. */
export function tryConnect(ip: string, port: number): Promise<string> {
  return new Promise((resolve) => {
    const s = connect({ host: ip, port });
    s.once('connect', () => {
      s.destroy();
      resolve('connected');
    });
    s.once('error', (err: NodeJS.ErrnoException) => {
      resolve(err.code ?? err.message);
    });
  });
}

export async function podsOf(registry: Registry, prefix: string): Promise<Pod[]> {
  return (await registry.list('Pod', 'default')).filter((p) => p.metadata.name.startsWith(prefix));
}

export function assertInCIDR(ip: string, prefix24: string): void {
  assert.ok(ip.startsWith(`${prefix24}.`), `${ip} is not in ${prefix24}.0/24`);
  const last = Number(ip.split('.')[3]);
  assert.ok(last >= 1 && last <= 254, `${ip}: host part out of .1-.254`);
}
