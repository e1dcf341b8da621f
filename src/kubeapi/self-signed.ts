import { createCA, issueCert, type CertificateAuthority } from '../certs/index.js';
import type { KubeApiTls } from './server.js';

/**
 * The issuer of the API servers `clustermesh up` starts: a CA per mesh (from the product
 * certificate module) and one server certificate per cluster naming the server's IP.
 */
export type LocalCa = CertificateAuthority;

export function createLocalCa(commonName: string): Promise<LocalCa> {
  return createCA(commonName);
}

/** A server certificate for `ip` (and `localhost`) signed by `ca`. */
export async function issueServerTls(
  ca: LocalCa,
  commonName: string,
  ip: string,
): Promise<KubeApiTls> {
  const leaf = await issueCert(ca, {
    commonName,
    serverAuth: true,
    ipAddresses: [ip],
    dnsNames: ['localhost'],
  });
  return { ca: ca.cert, cert: leaf.cert, key: leaf.key };
}
