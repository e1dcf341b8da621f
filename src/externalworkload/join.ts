/**
 * The VM side of joining a cluster (`agent --join-cluster`): write the registration,
 * wait for the apiserver's answer, and keep the registration for as long as the agent
 * runs (it is written again when it goes missing, e.g. after the apiserver restarted or
 * another VM tried to take the name), then remove it on stop.
 */
import type { Logger } from 'pino';
import type { Backend } from '../kvstore/backend.js';
import { sleep } from '../lib/abort.js';
import { ClusterMeshError, ErrorCode, errorMessage } from '../lib/errors.js';
import {
  decodeRegistration,
  encodeRegistration,
  registrationIPs,
  registrationKey,
  registrationRequest,
} from './registration.js';

export interface JoinOptions {
  readonly name: string;
  readonly cluster: string;
  readonly clusterId: number;
  /** The VM's address: what it registers and connects from. */
  readonly ip: string;
  readonly log: Logger;
  /** How long `register` waits for the apiserver's answer (default 30 s). */
  readonly answerTimeoutMs?: number | undefined;
  /** Called when the cluster refuses a registration after the first was accepted. */
  readonly onRefused?: ((message: string) => void) | undefined;
}

type Answer =
  | { readonly kind: 'accepted'; readonly identity: number }
  | { readonly kind: 'refused'; readonly message: string }
  | { readonly kind: 'taken'; readonly ip: string }
  | { readonly kind: 'missing' }
  | { readonly kind: 'pending' };

/** Hook of the agent's lifecycle (src/agent/module.ts) in external-workload mode. */
export class WorkloadRegistrar {
  private identityId: number | undefined;
  private readonly key: string;
  private readonly log: Logger;

  constructor(private readonly opts: JoinOptions) {
    this.key = registrationKey(opts.name);
    this.log = opts.log.child({ subsys: 'external-workload', workload: opts.name });
  }

  /** The identity the cluster gave this VM (after `register`). */
  get identity(): number | undefined {
    return this.identityId;
  }

  private request(): string {
    return encodeRegistration(
      registrationRequest({
        name: this.opts.name,
        cluster: this.opts.cluster,
        clusterId: this.opts.clusterId,
        ip: this.opts.ip,
      }),
    );
  }

  private answerOf(value: string | undefined): Answer {
    if (value === undefined) return { kind: 'missing' };
    try {
      const reg = decodeRegistration(this.opts.name, value);
      const ip = registrationIPs(reg.node)[0] ?? '';
      if (ip !== this.opts.ip) return { kind: 'taken', ip };
      if (reg.refused !== undefined) return { kind: 'refused', message: reg.refused };
      if (reg.node.NodeIdentity !== 0) return { kind: 'accepted', identity: reg.node.NodeIdentity };
      return { kind: 'pending' };
    } catch (err) {
      return { kind: 'refused', message: errorMessage(err) };
    }
  }

  /** Registers and resolves with the identity; ERR_EXTERNAL_WORKLOAD_REFUSED with the reason. */
  async register(backend: Backend, signal: AbortSignal): Promise<number> {
    const timeoutMs = this.opts.answerTimeoutMs ?? 30_000;
    const deadline = AbortSignal.any([signal, AbortSignal.timeout(timeoutMs)]);
    await backend.put(this.key, this.request(), { lease: true });
    this.log.info({ ip: this.opts.ip }, 'Registering external workload with the cluster');
    try {
      for await (const ev of backend.listAndWatch(this.key, deadline)) {
        if (ev.kind === 'listDone' || ev.key !== this.key) continue;
        const answer = this.answerOf(ev.kind === 'delete' ? undefined : ev.value);
        switch (answer.kind) {
          case 'accepted':
            this.identityId = answer.identity;
            this.log.info({ identity: answer.identity }, 'External workload registered');
            return answer.identity;
          case 'refused':
            throw refusal(this.opts.name, answer.message);
          case 'taken':
            throw refusal(this.opts.name, `${this.opts.name} is registered from ${answer.ip}`);
          case 'missing':
          case 'pending':
            break;
        }
      }
    } catch (err) {
      if (err instanceof ClusterMeshError && err.code === ErrorCode.ExternalWorkloadRefused) {
        // The refused request goes: nothing of it stays in the cluster's kvstore.
        await this.unregister(backend).catch(() => undefined);
        throw err;
      }
      if (signal.aborted) throw err;
    }
    await this.unregister(backend).catch(() => undefined);
    throw new ClusterMeshError(
      ErrorCode.Timeout,
      `${this.opts.name}: no answer to its registration from ${this.opts.cluster}'s clustermesh-apiserver within ${Math.round(timeoutMs / 1000)}s (is it running with external workloads enabled?)`,
    );
  }

  /** Keeps the registration in place until `signal` aborts. */
  async maintain(backend: Backend, signal: AbortSignal): Promise<void> {
    try {
      for await (const ev of backend.listAndWatch(this.key, signal)) {
        if (ev.kind === 'listDone' || ev.key !== this.key) continue;
        const answer = this.answerOf(ev.kind === 'delete' ? undefined : ev.value);
        if (answer.kind === 'accepted') {
          if (answer.identity !== this.identityId) {
            this.log.info({ identity: answer.identity }, 'External workload identity changed');
          }
          this.identityId = answer.identity;
        } else if (answer.kind === 'refused') {
          this.log.error({ reason: answer.message }, 'External workload registration refused');
          this.opts.onRefused?.(answer.message);
        } else if (answer.kind === 'missing' || answer.kind === 'taken') {
          // Let a VM that took the name over see its refusal before ours is written again.
          await sleep(500, signal);
          this.log.warn(
            { found: answer },
            'External workload registration lost; registering again',
          );
          await backend.put(this.key, this.request(), { lease: true });
        }
      }
    } catch (err) {
      if (!signal.aborted) throw err;
    }
  }

  /** Removes the registration if it is still this VM's. */
  async unregister(backend: Backend): Promise<void> {
    const kv = await backend.get(this.key);
    if (kv === undefined) return;
    const answer = this.answerOf(kv.value);
    if (answer.kind === 'taken') return;
    await backend.txnIf(
      [{ key: this.key, modRevision: kv.modRevision }],
      [{ kind: 'delete', key: this.key }],
    );
    this.log.info('External workload unregistered');
  }
}

function refusal(name: string, message: string): ClusterMeshError {
  return new ClusterMeshError(
    ErrorCode.ExternalWorkloadRefused,
    `registration of ${name} refused: ${message}`,
  );
}
