import { X509Certificate } from 'node:crypto';
import { readFile } from 'node:fs/promises';
import { parseEtcdConfig } from '../kvstore/config.js';

/**
 * The certificates a remote cluster's config file names (its `cert-file` and every CA in
 * its `trusted-ca-file`), with their expiry, for `status --verbose`. Parsed with Node's own
 * X.509 reader: agents pay nothing more for it than reading the files they already load.
 */

/** Certificates expiring sooner than this are called out (Cilium's certgen renews at 30 days). */
export const CERT_EXPIRY_WARNING_DAYS = 30;

const DAY_MS = 86_400_000;

export interface RemoteCertificate {
  /** Which entry of the config names it. */
  readonly file: 'cert-file' | 'trusted-ca-file';
  /** The subject's common name. */
  readonly subject: string;
  /** RFC 3339. */
  readonly 'not-after': string;
}

const PEM_BLOCK = /-----BEGIN CERTIFICATE-----[\s\S]+?-----END CERTIFICATE-----/g;

function certificatesIn(pem: string): X509Certificate[] {
  const out: X509Certificate[] = [];
  for (const block of pem.match(PEM_BLOCK) ?? []) {
    try {
      out.push(new X509Certificate(block));
    } catch {
      // Not parseable: the connection attempt reports the file as broken, status just skips it.
    }
  }
  return out;
}

function commonName(subject: string): string {
  return /(?:^|\n)CN=([^\n]*)/.exec(subject)?.[1] ?? subject.replace(/\n/g, ', ');
}

/**
 * The certificates of the etcd config at `path`; empty when it names none (plaintext) or
 * cannot be read (the connection attempt says why).
 */
export async function readRemoteCertificates(path: string): Promise<RemoteCertificate[]> {
  let cfg;
  try {
    cfg = parseEtcdConfig(await readFile(path, 'utf8'), path);
  } catch {
    return [];
  }
  const out: RemoteCertificate[] = [];
  for (const [file, p] of [
    ['cert-file', cfg.certFile],
    ['trusted-ca-file', cfg.trustedCaFile],
  ] as const) {
    if (p === undefined) continue;
    const pem = await readFile(p, 'utf8').catch(() => '');
    const certs = certificatesIn(pem);
    // The leaf is the first of a cert-file; a CA file may hold several CAs (rotation).
    for (const c of file === 'cert-file' ? certs.slice(0, 1) : certs) {
      out.push({
        file,
        subject: commonName(c.subject),
        'not-after': new Date(Date.parse(c.validTo)).toISOString(),
      });
    }
  }
  return out;
}

/** Whole days left until `notAfter` (negative once expired). */
export function daysLeft(notAfter: string, now: Date = new Date()): number {
  return Math.floor((Date.parse(notAfter) - now.getTime()) / DAY_MS);
}
