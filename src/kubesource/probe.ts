/**
 * A daemon that reads no Kubernetes object but runs in Kubernetes mode (KVStoreMesh)
 * still reports whether its API server answers: `/version` is read periodically, with
 * back-off while it fails, and the outcome shows in the daemon's status.
 */
import type { KubeConfig } from '@kubernetes/client-node';
import type { Logger } from 'pino';
import { sleep } from '../lib/abort.js';
import { Backoff } from '../lib/backoff.js';
import { errorMessage } from '../lib/errors.js';
import { kubeGet } from './informer.js';

export interface KubeProbeStatus {
  readonly server: string;
  readonly connected: boolean;
  /** The API server's gitVersion, once it answered. */
  readonly version?: string | undefined;
  readonly failures: number;
  readonly lastError?: string | undefined;
  readonly lastErrorAt?: string | undefined;
}

export class KubeApiProbe {
  private readonly server: string;
  private st: {
    connected: boolean;
    version?: string | undefined;
    failures: number;
    lastError?: string | undefined;
    lastErrorAt?: string | undefined;
  } = { connected: false, failures: 0 };

  constructor(
    private readonly kc: KubeConfig,
    private readonly log: Logger,
    private readonly intervalMs = 5_000,
  ) {
    this.server = (kc.getCurrentCluster()?.server ?? '').replace(/\/$/, '');
  }

  status(): KubeProbeStatus {
    return { server: this.server, ...this.st };
  }

  /** One check; resolves whether the server answered 200. */
  async check(): Promise<boolean> {
    try {
      const answer = await kubeGet(this.kc, '/version', 10_000, 'GET /version');
      if (answer.status !== 200) throw new Error(`GET /version: HTTP ${answer.status}`);
      const doc = JSON.parse(answer.text) as { gitVersion?: unknown };
      if (!this.st.connected) this.log.info({ server: this.server }, 'Kubernetes API reachable');
      this.st = {
        ...this.st,
        connected: true,
        version: typeof doc.gitVersion === 'string' ? doc.gitVersion : undefined,
      };
      return true;
    } catch (err) {
      if (this.st.connected || this.st.failures === 0) {
        this.log.warn(
          { server: this.server, err: errorMessage(err) },
          'Kubernetes API unreachable',
        );
      }
      this.st = {
        ...this.st,
        connected: false,
        failures: this.st.failures + 1,
        lastError: errorMessage(err),
        lastErrorAt: new Date().toISOString(),
      };
      return false;
    }
  }

  async run(signal: AbortSignal): Promise<void> {
    const backoff = new Backoff({ initialMs: 200, maxMs: this.intervalMs });
    while (!signal.aborted) {
      const ok = await this.check();
      if (ok) backoff.reset();
      await sleep(ok ? this.intervalMs : backoff.next(), signal).catch(() => undefined);
    }
  }
}
