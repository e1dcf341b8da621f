/**
 * etcd for tests: src/etcd with test certificates on request and signal hooks, so an
 * interrupted or timed-out test run leaves no etcd processes or temp dirs behind.
 */
import {
  killAllEtcdSync,
  startEtcd as startProductEtcd,
  startEtcdCluster as startProductEtcdCluster,
  type EtcdCluster,
  type EtcdServer,
  type EtcdTlsFiles,
  type StartEtcdOptions,
} from '../../src/etcd/index.js';
import {
  createCA,
  issueCert,
  loopbackServerCertOptions,
  writeTlsBundle,
  type CertificateAuthority,
} from './tls.js';

export {
  createEtcdClient,
  findEtcdBinary,
  EtcdCluster,
  EtcdMember,
  EtcdServer,
  type EtcdClientTarget,
} from '../../src/etcd/index.js';

export interface TestEtcdOptions extends Omit<StartEtcdOptions, 'tls'> {
  /** Serve clients over mutual TLS with a server and a client certificate from a test CA. */
  tls?: boolean;
  /** The CA to issue them from instead of a fresh one (only with `tls`). */
  authority?: CertificateAuthority;
  /**
   * Serve clients over mutual TLS with these files (certificates made elsewhere, e.g. by
   * `clustermesh certs create`); the client files are what the health probes present.
   */
  tlsFiles?: EtcdTlsFiles;
}

let signalHooksInstalled = false;

// The 'exit' hook of src/etcd does not run when a signal terminates the process.
function installSignalHooks(): void {
  if (signalHooksInstalled) return;
  signalHooksInstalled = true;
  for (const signal of ['SIGINT', 'SIGTERM', 'SIGHUP'] as const) {
    process.once(signal, () => {
      killAllEtcdSync();
      // Listening disabled the default "terminate" action; restore it when nobody else listens.
      if (process.listenerCount(signal) === 0) process.kill(process.pid, signal);
    });
  }
}

async function writeTestCerts(dir: string, authority: CertificateAuthority): Promise<EtcdTlsFiles> {
  const server = await writeTlsBundle(
    dir,
    authority,
    await issueCert(authority, loopbackServerCertOptions('etcd-server')),
    'server',
  );
  const client = await writeTlsBundle(
    dir,
    authority,
    await issueCert(authority, { commonName: 'etcd-client', clientAuth: true }),
    'client',
  );
  return {
    caFile: server.caFile,
    serverCertFile: server.certFile,
    serverKeyFile: server.keyFile,
    clientCertFile: client.certFile,
    clientKeyFile: client.keyFile,
  };
}

async function productOptions(opts: TestEtcdOptions): Promise<StartEtcdOptions> {
  installSignalHooks();
  const { tls, authority, tlsFiles, ...rest } = opts;
  if (tlsFiles !== undefined) return { ...rest, tls: tlsFiles };
  if (tls !== true) return rest;
  const ca = authority ?? (await createCA('clustermesh-test-etcd-ca'));
  return { ...rest, tls: (dir) => writeTestCerts(dir, ca) };
}

/** A single-member etcd on random loopback ports. Call `destroy()` when done. */
export async function startEtcd(opts: TestEtcdOptions = {}): Promise<EtcdServer> {
  return startProductEtcd(await productOptions(opts));
}

/** A `size`-member etcd cluster on loopback. Call `destroy()` when done. */
export async function startEtcdCluster(
  size = 3,
  opts: Omit<TestEtcdOptions, 'dataDir'> = {},
): Promise<EtcdCluster> {
  return startProductEtcdCluster(size, await productOptions(opts));
}
