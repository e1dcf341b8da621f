/**
 * Running etcd processes on loopback: single members and clusters on random ports with temp
 * data dirs, restart, wipe, stop, optional mutual TLS from given certificate files. `up` runs
 * one per cluster; the test fixtures wrap the same code with test certificates.
 */
export { findEtcdBinary } from './binary.js';
export { createEtcdClient, type EtcdClientPem, type EtcdClientTarget } from './client.js';
export {
  EtcdCluster,
  EtcdServer,
  startEtcd,
  startEtcdCluster,
  type EtcdTlsFiles,
  type StartEtcdOptions,
  type WriteClientConfigOptions,
} from './deployment.js';
export { EtcdMember, type EtcdClientTls, type MemberStartOptions } from './member.js';
export { freePort, freePorts } from './ports.js';
export { killAllEtcdSync } from './reaper.js';
