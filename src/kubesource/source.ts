/**
 * Kubernetes mode: the cluster's objects read from a Kubernetes API server through
 * client-node informers, behind the same ObjectSource as the registry.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { Counter, Histogram, type Registry } from 'prom-client';
import { errorMessage } from '../lib/errors.js';
import { requireKind } from '../registry/codec.js';
import type { ObjectSource } from '../registry/source.js';
import { KubeInformer, type KubeInformerObserver } from './informer.js';

/** How the API server answers, per resource, for `status` and `/healthz`. */
export interface KubeSourceStatus {
  readonly server: string;
  /** Every informer listed and watching. */
  readonly ok: boolean;
  readonly resources: readonly {
    readonly resource: string;
    readonly connected: boolean;
    readonly lastError?: string | undefined;
    readonly lastErrorAt?: string | undefined;
    readonly failures: number;
  }[];
}

export interface KubeObjectSource extends ObjectSource {
  status(): KubeSourceStatus;
  /** Counts a request made beside the informers (the writer's) in the same client metrics. */
  observeCall(method: string, statusCode: number, seconds: number): void;
}

interface ResourceState {
  connected: boolean;
  lastError?: string | undefined;
  lastErrorAt?: string | undefined;
  failures: number;
}

/**
 * `metrics`: where Cilium's Kubernetes client metrics go
 * (`cilium_k8s_client_api_calls_total`, `cilium_k8s_client_api_latency_time_seconds`,
 * `cilium_kubernetes_events_received_total`).
 */
export function kubeObjects(
  kc: KubeConfig,
  opts: { readonly log: Logger; readonly metrics?: Registry | undefined },
): KubeObjectSource {
  const server = kc.getCurrentCluster()?.server ?? '';
  const host = (() => {
    try {
      return new URL(server).host;
    } catch {
      return server;
    }
  })();
  const registers = opts.metrics === undefined ? [] : [opts.metrics];
  const calls = new Counter({
    name: 'cilium_k8s_client_api_calls_total',
    help: 'Number of API calls made to kube-apiserver labeled by host, method and return code',
    labelNames: ['host', 'method', 'return_code'],
    registers,
  });
  const latency = new Histogram({
    name: 'cilium_k8s_client_api_latency_time_seconds',
    help: 'Duration of processed API calls labeled by path and method',
    labelNames: ['path', 'method'],
    registers,
  });
  const events = new Counter({
    name: 'cilium_kubernetes_events_received_total',
    help: 'Number of Kubernetes events received labeled by scope, action, validity and equalness',
    labelNames: ['scope', 'action', 'validity', 'equal'],
    registers,
  });
  const states = new Map<string, ResourceState>();
  const state = (resource: string): ResourceState => {
    let s = states.get(resource);
    if (s === undefined) {
      s = { connected: false, failures: 0 };
      states.set(resource, s);
    }
    return s;
  };
  const observer: KubeInformerObserver = {
    onList(resource, statusCode, seconds) {
      calls.inc({ host, method: 'GET', return_code: String(statusCode) });
      latency.observe({ path: resource, method: 'GET' }, seconds);
    },
    onEvent(resource, action, valid) {
      events.inc({
        scope: resource,
        action,
        validity: valid ? 'valid' : 'invalid',
        equal: 'false',
      });
    },
    onError(resource, err) {
      const s = state(resource);
      s.connected = false;
      s.failures++;
      s.lastError = errorMessage(err);
      s.lastErrorAt = new Date().toISOString();
    },
    onConnected(resource) {
      state(resource).connected = true;
    },
  };
  opts.log.info({ server }, 'Kubernetes mode: reading objects from the API server');
  return {
    mode: 'kubernetes',
    informer: (kind, handlers, informerOpts) => {
      state(requireKind(kind).resource);
      return new KubeInformer(kc, requireKind(kind), handlers, {
        namespace: informerOpts?.namespace,
        log: informerOpts?.log ?? opts.log,
        observer,
      });
    },
    observeCall: (method, statusCode, seconds) => {
      calls.inc({ host, method, return_code: String(statusCode) });
      latency.observe({ path: 'write', method }, seconds);
    },
    status: () => {
      const resources = [...states].map(([resource, s]) => ({ resource, ...s }));
      return { server, ok: resources.every((r) => r.connected), resources };
    },
  };
}
