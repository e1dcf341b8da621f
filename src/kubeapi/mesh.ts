import { randomBytes } from 'node:crypto';
import { rm, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { Logger } from 'pino';
import type { Registry } from '../registry/registry.js';
import { kubeconfigYaml } from './kubeconfig.js';
import { createLocalCa, issueServerTls } from './self-signed.js';
import { KubeApiServer, type KubeApiTls } from './server.js';

/**
 * The Kubernetes API servers of a local mesh: one per cluster, on the cluster's first node
 * IP at the API server's usual port, and the kubeconfig naming them (`cluster1`, …).
 */

export const KUBE_API_PORT = 6443;
export const KUBECONFIG_FILE = 'kubeconfig';

export interface MeshKubeApiCluster {
  readonly name: string;
  /** The loopback address the server listens on (and its certificate names). */
  readonly ip: string;
  readonly registry: Registry;
}

/** Issues the certificate of one cluster's server; the product certificate module can replace it. */
export type KubeApiTlsIssuer = (cluster: MeshKubeApiCluster) => Promise<KubeApiTls>;

export interface MeshKubeApisOptions {
  readonly stateDir: string;
  readonly clusters: readonly MeshKubeApiCluster[];
  readonly log: Logger;
  readonly port?: number | undefined;
  readonly issueTls?: KubeApiTlsIssuer | undefined;
}

export interface MeshKubeApis {
  /** `<state-dir>/kubeconfig`. */
  readonly kubeconfig: string;
  readonly servers: ReadonlyMap<string, KubeApiServer>;
  /** Stops the servers and removes the kubeconfig. */
  stop(): Promise<void>;
}

/** A throw-away CA for this mesh and a certificate per cluster. */
async function selfSignedIssuer(): Promise<KubeApiTlsIssuer> {
  const ca = await createLocalCa('clustermesh-local-kube-ca');
  return (c) => issueServerTls(ca, `${c.name}-kube-apiserver`, c.ip);
}

export async function startMeshKubeApis(opts: MeshKubeApisOptions): Promise<MeshKubeApis> {
  const issue = opts.issueTls ?? (await selfSignedIssuer());
  const servers = new Map<string, KubeApiServer>();
  const stop = async (): Promise<void> => {
    await Promise.all([...servers.values()].map((s) => s.stop()));
  };
  try {
    for (const c of opts.clusters) {
      const server = new KubeApiServer({
        registry: c.registry,
        tls: await issue(c),
        token: randomBytes(24).toString('hex'),
        host: c.ip,
        port: opts.port ?? KUBE_API_PORT,
        log: opts.log.child({ cluster: c.name }),
      });
      servers.set(c.name, server);
      await server.start();
    }
  } catch (err) {
    await stop();
    throw err;
  }
  const kubeconfig = join(opts.stateDir, KUBECONFIG_FILE);
  const entries = opts.clusters.flatMap((c) => {
    const s = servers.get(c.name);
    return s === undefined
      ? []
      : [{ name: c.name, server: s.url, caPem: s.caPem, token: s.tokenValue }];
  });
  await writeFile(kubeconfig, kubeconfigYaml(entries), { mode: 0o600 });
  return {
    kubeconfig,
    servers,
    // Its servers and tokens are gone: the file would only mislead kubectl.
    stop: async () => {
      await stop();
      await rm(kubeconfig, { force: true });
    },
  };
}
