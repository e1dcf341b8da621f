// @peculiar/x509 resolves its ASN.1 and crypto services through tsyringe, which needs the
// Reflect metadata polyfill loaded before it.
import 'reflect-metadata';
import { webcrypto } from 'node:crypto';
import * as x509 from '@peculiar/x509';

x509.cryptoProvider.set(webcrypto);

/**
 * Certificates as a product feature: ECDSA P-256 CAs and leaves, PEM in and out. Loaded only
 * by code paths that make or inspect certificates (`up` with TLS, `mesh enable`, `certs`),
 * never by src/etcd or the kvstore client, so that plain starts pay nothing for it.
 */

const KEY_ALGORITHM: webcrypto.EcKeyGenParams = { name: 'ECDSA', namedCurve: 'P-256' };
const SIGNING_ALGORITHM: webcrypto.EcdsaParams = { name: 'ECDSA', hash: 'SHA-256' };
const DAY_MS = 24 * 60 * 60 * 1000;
// Backdating tolerates small clock differences between this process and etcd.
const BACKDATE_MS = 60 * 60 * 1000;
/** Cilium's certgen default validity. */
export const DEFAULT_VALIDITY_DAYS = 365;

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
  dnsNames?: readonly string[];
  ipAddresses?: readonly string[];
  validityDays?: number;
  /** Explicit validity window (tests of expired certificates); overrides validityDays. */
  notBefore?: Date;
  notAfter?: Date;
}

function generateKeys(): Promise<webcrypto.CryptoKeyPair> {
  // Extractable so that the private key can be exported to PEM for etcd and gRPC.
  return webcrypto.subtle.generateKey(KEY_ALGORITHM, true, ['sign', 'verify']);
}

async function privateKeyPem(key: webcrypto.CryptoKey): Promise<string> {
  const pkcs8 = await webcrypto.subtle.exportKey('pkcs8', key);
  return x509.PemConverter.encode(pkcs8, 'PRIVATE KEY');
}

function validity(
  days: number,
  notBefore?: Date,
  notAfter?: Date,
): { notBefore: Date; notAfter: Date } {
  const now = Date.now();
  return {
    notBefore: notBefore ?? new Date(now - BACKDATE_MS),
    notAfter: notAfter ?? new Date(now + days * DAY_MS),
  };
}

function subjectName(commonName: string): x509.JsonName {
  return [{ CN: [commonName] }];
}

/** A self-signed ECDSA P-256 certificate authority. */
export async function createCA(
  commonName: string,
  opts: { validityDays?: number } = {},
): Promise<CertificateAuthority> {
  const keys = await generateKeys();
  const certificate = await x509.X509CertificateGenerator.createSelfSigned({
    name: subjectName(commonName),
    keys,
    signingAlgorithm: SIGNING_ALGORITHM,
    ...validity(opts.validityDays ?? DEFAULT_VALIDITY_DAYS),
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

/** Loads a CA from its PEM certificate and PKCS#8 key (to issue more leaves from it). */
export async function loadCA(pem: PemKeyPair): Promise<CertificateAuthority> {
  const certificate = new x509.X509Certificate(pem.cert);
  const der = x509.PemConverter.decodeFirst(pem.key);
  const privateKey = await webcrypto.subtle.importKey('pkcs8', der, KEY_ALGORITHM, true, ['sign']);
  const publicKey = await webcrypto.subtle.importKey(
    'spki',
    certificate.publicKey.rawData,
    KEY_ALGORITHM,
    true,
    ['verify'],
  );
  const cn = /CN=([^,]+)/.exec(certificate.subject)?.[1] ?? certificate.subject;
  return { commonName: cn, certificate, keys: { privateKey, publicKey }, ...pem };
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
    new x509.KeyUsagesExtension(
      x509.KeyUsageFlags.digitalSignature | x509.KeyUsageFlags.keyEncipherment,
      true,
    ),
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
    ...validity(opts.validityDays ?? DEFAULT_VALIDITY_DAYS, opts.notBefore, opts.notAfter),
    extensions,
  });
  return {
    commonName: opts.commonName,
    certificate,
    cert: certificate.toString('pem'),
    key: await privateKeyPem(keys.privateKey),
  };
}

/** What `status --verbose` shows of a certificate. */
export interface CertificateInfo {
  readonly subject: string;
  readonly commonName: string;
  readonly issuer: string;
  readonly notBefore: Date;
  readonly notAfter: Date;
  readonly dnsNames: readonly string[];
  readonly ipAddresses: readonly string[];
}

export function certificateInfo(pem: string): CertificateInfo {
  const c = new x509.X509Certificate(pem);
  const san = c.getExtension(x509.SubjectAlternativeNameExtension);
  const json = san?.names.toJSON() ?? [];
  return {
    subject: c.subject,
    commonName: /CN=([^,]+)/.exec(c.subject)?.[1] ?? '',
    issuer: c.issuer,
    notBefore: c.notBefore,
    notAfter: c.notAfter,
    dnsNames: json.filter((n) => n.type === 'dns').map((n) => n.value),
    ipAddresses: json.filter((n) => n.type === 'ip').map((n) => n.value),
  };
}
