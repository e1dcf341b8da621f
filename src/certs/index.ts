/**
 * Certificates for the mesh's etcd servers and clients: per cluster a CA, a server
 * certificate for `*.mesh.cilium.io` and a client certificate per etcd user.
 */
export {
  createCA,
  issueCert,
  loadCA,
  certificateInfo,
  DEFAULT_VALIDITY_DAYS,
  type CertificateAuthority,
  type CertificateInfo,
  type IssueCertOptions,
  type IssuedCertificate,
  type PemKeyPair,
} from './x509.js';
export {
  APISERVER_SERVICE_NAME,
  MESH_DOMAIN,
  USER_ROLES,
  clusterCertFiles,
  clusterUsers,
  finishCaRotation,
  meshHostname,
  pemCertificates,
  startCaRotation,
  trustedCAs,
  readCertificateInfo,
  rotateClusterCerts,
  serverDnsNames,
  writeClusterCerts,
  writePem,
  type CertPaths,
  type ClusterCertFiles,
  type ClusterCertOptions,
  type ClusterUsers,
  type UserRole,
} from './cluster.js';
