// @peculiar/x509 uses tsyringe, which needs the Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import { mkdir, writeFile } from 'node:fs/promises';
import { join } from 'node:path';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 24 * 60 * 60 * 1000;
// Backdating tolerates small clock differences between the test process and etcd.
const BACKDATE_MS = 60 * 60 * 1000;

/** A PEM certificate with its PKCS#8 PEM private key. */
export interface PemKeyPair {
  cert: string;
  key: string;
}

export interface CertificateAuthority extends PemKeyPair {
  commonName: string;
  certificate: x509.X509Certificate;
  keys: webcrypto.CryptoKeyPair;
}

export interface IssuedCertificate extends PemKeyPair {
  commonName: string;
  certificate: x509.X509Certificate;
}

export interface IssueCertOptions {
  commonName: string;
  /** Adds the serverAuth extended key usage. */
  serverAuth?: boolean;
  /** Adds the clientAuth extended key usage. */
  clientAuth?: boolean;
  dnsNames?: string[];
  ipAddresses?: string[];
  validityDays?: number;
}

/** File paths plus PEM contents of a CA certificate and a leaf certificate/key. */
export interface TlsBundle {
  caFile: string;
  certFile: string;
  keyFile: string;
  ca: string;
  cert: string;
  key: string;
}

function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  // Extractable so that the private key can be exported to PEM for etcd and gRPC.
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

function validity(days: number): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return { notBefore: new Date(now - BACKDATE_MS), notAfter: new Date(now + days * DAY_MS) };
}

function subjectName(commonName: string): x509.JsonName {
  return [{ CN: [commonName] }];
}

/** Creates a self-signed ECDSA P-256 certificate authority. */
export async function createCA(
  commonName: string,
  opts: { validityDays?: number } = {},
): Promise<CertificateAuthority> {
  const keys = await generateKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: subjectName(commonName),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...validity(opts.validityDays ?? 30),
    extensions: [
      new x509.BasicConstraintsExtension(true, undefined, true),
      new x509.KeyUsagesExtension(
        x509.KeyUsageFlags.keyCertSign | x509.KeyUsageFlags.cRLSign,
        true,
      ),
      await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    ],
  });
  return {
    commonName,
    certificate,
    keys,
    cert: certificate.toString('pem'),
    key: await privateKeyPem(keys.privateKey),
  };
}

/** Issues an ECDSA P-256 leaf certificate signed by `ca`. */
export async function issueCert(
  ca: CertificateAuthority,
  opts: IssueCertOptions,
): Promise<IssuedCertificate> {
  const keys = await generateKeys();
  const usages: string[] = [];
  if (opts.serverAuth === true) usages.push(x509.ExtendedKeyUsage.serverAuth);
  if (opts.clientAuth === true) usages.push(x509.ExtendedKeyUsage.clientAuth);
  const names: x509.JsonGeneralName[] = [
    ...(opts.dnsNames ?? []).map((value): x509.JsonGeneralName => ({ type: 'dns', value })),
    ...(opts.ipAddresses ?? []).map((value): x509.JsonGeneralName => ({ type: 'ip', value })),
  ];
  const extensions: x509.Extension[] = [
    new x509.BasicConstraintsExtension(false, undefined, true),
    new x509.KeyUsagesExtension(x509.KeyUsageFlags.digitalSignature, true),
    await x509.SubjectKeyIdentifierExtension.create(keys.publicKey),
    await x509.AuthorityKeyIdentifierExtension.create(ca.keys.publicKey),
  ];
  if (usages.length > 0) extensions.push(new x509.ExtendedKeyUsageExtension(usages));
  // Go (etcd) ignores the common name for hostname checks, so servers need SANs.
  if (names.length > 0) extensions.push(new x509.SubjectAlternativeNameExtension(names));
  const certificate = await x509.X509CertificateGenerator.create({
    subject: subjectName(opts.commonName),
    issuer: ca.certificate.subject,
    publicKey: keys.publicKey,
    signingKey: ca.keys.privateKey,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...validity(opts.validityDays ?? 30),
    extensions,
  });
  return {
    commonName: opts.commonName,
    certificate,
    cert: certificate.toString('pem'),
    key: await privateKeyPem(keys.privateKey),
  };
}

/** Options for a certificate usable by a loopback server (and as its own client). */
export function loopbackServerCertOptions(commonName: string): IssueCertOptions {
  return {
    commonName,
    serverAuth: true,
    clientAuth: true,
    dnsNames: ['localhost'],
    ipAddresses: ['127.0.0.1', '::1'],
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
