/**
 * Test certificates: a thin layer over src/certs (the product's certificate code) plus the
 * helpers only tests need (a loopback server certificate, a bundle written to a directory).
 */
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import type { IssueCertOptions, PemKeyPair } from '../../src/certs/index.js';

export {
  createCA,
  issueCert,
  type CertificateAuthority,
  type IssueCertOptions,
  type IssuedCertificate,
  type PemKeyPair,
} from '../../src/certs/index.js';

/** File paths plus PEM contents of a CA certificate and a leaf certificate/key. */
export interface TlsBundle {
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: string;
  cert: string;
  key: string;
}

/** Options for a certificate usable by a loopback server (and as its own client). */
export function loopbackServerCertOptions(commonName: string): IssueCertOptions {
  return {
    commonName,
    serverAuth: true,
    clientAuth: true,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
    validityDays: 30,
  };
}

/**
 * Writes `<dir>/ca.crt`, `<dir>/<name>.crt` and `<dir>/<name>.key` (the key with mode 0600)
 * and returns their paths with the PEM contents.
 */
export async function writeTlsBundle(
  dir: string,
  ca: PemKeyPair | string,
  leaf: PemKeyPair,
  name = 'client',
): Promise<TlsBundle> {
  await mkdir(dir, { recursive: true });
  const caPem = typeof ca === 'string' ? ca : ca.cert;
  const bundle: TlsBundle = {
    caFile: join(dir, 'ca.crt'),
    certFile: join(dir, `${name}.crt`),
    keyFile: join(dir, `${name}.key`),
    ca: caPem,
    cert: leaf.cert,
    key: leaf.key,
  };
  await writeFile(bundle.caFile, caPem, { mode: 0o644 });
  await writeFile(bundle.certFile, leaf.cert, { mode: 0o644 });
  await writeFile(bundle.keyFile, leaf.key, { mode: 0o600 });
  return bundle;
}
