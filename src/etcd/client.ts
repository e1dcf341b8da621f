import { noop } from 'cockatiel';
import { Etcd3, type IOptions } from 'etcd3';

/** PEM client credentials: the CA that signed etcd's certificate, a client certificate and key. */
export interface EtcdClientPem {
  ca: string;
  cert: string;
  key: string;
}

/** Anything a client can be pointed at: an `EtcdServer`, an `EtcdCluster`, or a hand-made target. */
export interface EtcdClientTarget {
  endpoints: readonly string[];
  tls?: EtcdClientPem | undefined;
}

/** Creates an etcd3 client without retries or circuit breakers, so restarts are never masked. */
export function createEtcdClient(
  target: EtcdClientTarget,
  overrides: Partial<IOptions> = {},
): Etcd3 {
  const options: IOptions = {
    hosts: [...target.endpoints],
    dialTimeout: 5_000,
    faultHandling: { host: () => noop, global: noop },
    ...overrides,
  };
  if (target.tls !== undefined && overrides.credentials === undefined) {
    options.credentials = {
      rootCertificate: Buffer.from(target.tls.ca),
      certChain: Buffer.from(target.tls.cert),
      privateKey: Buffer.from(target.tls.key),
    };
  }
  return new Etcd3(options);
}
