import { createHash, randomInt } from 'node:crypto';
import type { Logger } from 'pino';
import { ErrorCode, isClusterMeshError } from '../lib/errors.js';
import { sameJson } from '../registry/codec.js';
import type { Deployment, DeploymentStatus, Pod, PodTemplate } from '../registry/objects.js';
import type { Registry } from '../registry/registry.js';
import type { Informer, ObjectEvent, OwnerReference, RegistryObject } from '../registry/types.js';
import { Controller, keyOf, splitKey } from './controller.js';
import type { SharedInformers } from './informers.js';
import { isPodReady } from './pod-status.js';

/**
 * Deployments without ReplicaSets: the controller owns the pods directly
 * (`metadata.ownerReferences` → the Deployment), tells template versions apart by the
 * `pod-template-hash` label, and rolls a changed template out by creating the new pods
 * first and deleting old ones as new ones become ready.
 */

export const POD_TEMPLATE_HASH_LABEL = 'pod-template-hash';

/** How long a reconcile waits to see its own pod writes in the cache before counting again. */
const CACHE_WAIT_MS = 5_000;

/** Kubernetes' `rand.SafeEncodeString` alphabet: no vowels, no look-alikes. */
const SAFE_ALPHABET = 'bcdfghjklmnpqrstvwxz2456789';
const SUFFIX_ALPHABET = 'abcdefghijklmnopqrstuvwxyz0123456789';
/** Kubernetes caps generated name prefixes so that a pod name stays a valid hostname. */
const MAX_NAME_PREFIX = 58;

/** A short, stable hash of a pod template (equal templates, equal hashes, whatever the key order). */
export function templateHash(template: PodTemplate): string {
  const digest = createHash('sha256').update(canonicalJson(template)).digest();
  return String(digest.readUInt32BE(0))
    .split('')
    .map((ch) => SAFE_ALPHABET[ch.charCodeAt(0) % SAFE_ALPHABET.length] ?? 'b')
    .join('');
}

function canonicalJson(v: unknown): string {
  if (Array.isArray(v)) return `[${v.map(canonicalJson).join(',')}]`;
  if (typeof v === 'object' && v !== null) {
    const entries = Object.entries(v as Record<string, unknown>)
      .filter(([, x]) => x !== undefined)
      .sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
    return `{${entries.map(([k, x]) => `${JSON.stringify(k)}:${canonicalJson(x)}`).join(',')}}`;
  }
  return JSON.stringify(v);
}

/** The managing controller of an object, if any. */
export function controllerOf(obj: RegistryObject): OwnerReference | undefined {
  return obj.metadata.ownerReferences?.find((r) => r.controller === true);
}

function randomSuffix(): string {
  let s = '';
  for (let i = 0; i < 5; i++) s += SUFFIX_ALPHABET[randomInt(SUFFIX_ALPHABET.length)] ?? 'x';
  return s;
}

export interface DeploymentControllerOptions {
  readonly registry: Registry;
  readonly informers: SharedInformers;
  readonly deployments: Informer<Deployment>;
  readonly pods: Informer<Pod>;
  readonly log: Logger;
}

export class DeploymentController {
  readonly controller: Controller;
  private readonly log: Logger;

  constructor(private readonly o: DeploymentControllerOptions) {
    this.log = o.log.child({ controller: 'deployments' });
    this.controller = new Controller(
      'deployments',
      (key, signal) => this.reconcile(key, signal),
      this.log,
    );
  }

  onDeployment(ev: ObjectEvent<Deployment>): void {
    this.controller.enqueue(keyOf(ev.object.metadata.namespace, ev.object.metadata.name));
  }

  /** Pods changing (ready, deleted by hand) move their Deployment's count and status. */
  onPod(ev: ObjectEvent<Pod>): void {
    const owners = [ev.object, ...(ev.type === 'modified' && ev.old !== undefined ? [ev.old] : [])];
    for (const pod of owners) {
      const ref = controllerOf(pod);
      if (ref?.kind === 'Deployment') {
        this.controller.enqueue(keyOf(pod.metadata.namespace, ref.name));
      }
    }
  }

  private ownedPods(namespace: string, name: string): Pod[] {
    return this.o.pods.list().filter((p) => {
      const ref = controllerOf(p);
      return (
        (p.metadata.namespace ?? 'default') === namespace &&
        ref?.kind === 'Deployment' &&
        ref.name === name
      );
    });
  }

  private async reconcile(key: string, signal: AbortSignal): Promise<void> {
    const { namespace, name } = splitKey(key);
    const d = this.o.deployments.get(namespace, name);
    const owned = this.ownedPods(namespace, name);
    if (d === undefined) {
      // Kubernetes' garbage collector would do this; local mode has none.
      await this.settle(namespace, [], owned, signal);
      return;
    }
    const uid = d.metadata.uid ?? '';
    // Pods of an earlier Deployment of the same name belong to nobody now.
    const stale = owned.filter((p) => controllerOf(p)?.uid !== uid);
    const mine = owned.filter((p) => controllerOf(p)?.uid === uid);
    const hash = templateHash(d.spec.template);
    const current = mine.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] === hash);
    const old = mine.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] !== hash);
    const want = d.spec.replicas;

    const remove: Pod[] = [...stale];
    const surplus = removalOrder(current).slice(0, Math.max(0, current.length - want));
    remove.push(...surplus);
    const kept = current.filter((p) => !surplus.includes(p));
    // Old pods serve until enough new ones are ready; a broken template keeps them.
    const oldToKeep = Math.max(0, want - kept.filter(isPodReady).length);
    remove.push(...removalOrder(old).slice(0, Math.max(0, old.length - oldToKeep)));

    const created: string[] = [];
    for (let i = kept.length; i < want; i++) created.push(await this.createPod(d, hash));
    if (created.length > 0 || remove.length > 0) {
      this.log.info(
        { deployment: key, hash, created: created.length, deleted: remove.length, replicas: want },
        'scaling',
      );
    }
    await this.settle(namespace, created, remove, signal);
    await this.writeStatus(d, hash);
  }

  /** Deletes `remove`, then waits until the cache shows every write (bounded). */
  private async settle(
    namespace: string,
    created: readonly string[],
    remove: readonly Pod[],
    signal: AbortSignal,
  ): Promise<void> {
    for (const p of remove) await this.o.registry.delete('Pod', namespace, p.metadata.name);
    if (created.length === 0 && remove.length === 0) return;
    const seen = await this.o.informers.waitFor(
      'Pod',
      () =>
        created.every((n) => this.o.pods.get(namespace, n) !== undefined) &&
        remove.every(
          (p) => this.o.pods.get(namespace, p.metadata.name)?.metadata.uid !== p.metadata.uid,
        ),
      CACHE_WAIT_MS,
      signal,
    );
    if (!seen && !signal.aborted) {
      this.log.warn({ namespace, created, deleted: remove.length }, 'pod cache lags behind');
    }
  }

  private async createPod(d: Deployment, hash: string): Promise<string> {
    const template = d.spec.template;
    const prefix = `${d.metadata.name}-${hash}-`.slice(0, MAX_NAME_PREFIX);
    for (let attempt = 0; ; attempt++) {
      const name = `${prefix}${randomSuffix()}`;
      const pod: Pod = {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: {
          name,
          namespace: d.metadata.namespace ?? 'default',
          labels: { ...template.metadata?.labels, [POD_TEMPLATE_HASH_LABEL]: hash },
          ...(template.metadata?.annotations === undefined
            ? {}
            : { annotations: template.metadata.annotations }),
          ownerReferences: [
            {
              apiVersion: 'apps/v1',
              kind: 'Deployment',
              name: d.metadata.name,
              uid: d.metadata.uid ?? '',
              controller: true,
              blockOwnerDeletion: true,
            },
          ],
        },
        spec: structuredClone(template.spec),
      };
      try {
        await this.o.registry.create(pod);
        return name;
      } catch (err) {
        // A name clash (1 in 60 million): draw another suffix.
        if (!isClusterMeshError(err, ErrorCode.Conflict) || attempt >= 4) throw err;
      }
    }
  }

  private async writeStatus(d: Deployment, hash: string): Promise<void> {
    const namespace = d.metadata.namespace ?? 'default';
    const pods = this.ownedPods(namespace, d.metadata.name).filter(
      (p) => controllerOf(p)?.uid === d.metadata.uid,
    );
    const ready = pods.filter(isPodReady).length;
    const counts = {
      observedGeneration: d.metadata.generation ?? 1,
      replicas: pods.length,
      updatedReplicas: pods.filter((p) => p.metadata.labels?.[POD_TEMPLATE_HASH_LABEL] === hash)
        .length,
      readyReplicas: ready,
      availableReplicas: ready,
    };
    const change = (cur: Deployment): Deployment | undefined => {
      const status: DeploymentStatus = { ...cur.status, ...counts };
      return sameJson(status, cur.status) ? undefined : { ...cur, status };
    };
    if (change(d) === undefined) return;
    await this.o.registry.patch('Deployment', namespace, d.metadata.name, (cur) =>
      cur.metadata.uid === d.metadata.uid ? change(cur) : undefined,
    );
  }
}

/**
 * The order in which surplus pods go: those not serving first (they cost nothing), then
 * the newest, as Kubernetes does.
 */
function removalOrder(pods: readonly Pod[]): Pod[] {
  return [...pods].sort(
    (a, b) =>
      Number(isPodReady(a)) - Number(isPodReady(b)) ||
      (b.metadata.creationTimestamp ?? '').localeCompare(a.metadata.creationTimestamp ?? '') ||
      b.metadata.name.localeCompare(a.metadata.name),
  );
}
