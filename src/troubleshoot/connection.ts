/**
 * The connection of a cluster to one remote, step by step, from the remote's etcd config
 * file (the standard format: endpoints, trusted-ca-file, cert-file, key-file): name
 * resolution → TCP → TLS (version, cipher, certificates, CA match, expiry) → etcd (version,
 * cluster ID) → authorization (user, read, read-only) → the remote's cluster config. The
 * chain stops at the first failure: later steps would only repeat it.
 */
import { applyHostAliases, HOST_ALIASES_FILE, tlsNameOverride } from '../kvstore/host-aliases.js';
import { X509Certificate } from 'node:crypto';
import { lookup } from 'node:dns/promises';
import { readFile } from 'node:fs/promises';
import { connect as tcpConnect, isIP } from 'node:net';
import { connect as tlsConnect, type PeerCertificate, type TLSSocket } from 'node:tls';
import { Etcd3, type IOptions } from 'etcd3';
import { noop } from 'cockatiel';
import type { EtcdClientConfig } from '../kvstore/config.js';
import {
  clusterConfigKey,
  decodeClusterConfig,
  validateRemoteClusterConfig,
  type CiliumClusterConfig,
} from '../keyspace/index.js';
import { errorMessage } from '../lib/errors.js';
import type { Check, CheckStatus } from './check.js';

/** Certificates expiring sooner than this are a warning. */
export const EXPIRY_WARNING_DAYS = 30;
const DAY_MS = 86_400_000;
/** A key under `cilium/` that the write probe names; never written (see `authCheck`). */
export const WRITE_PROBE_KEY = 'cilium/.troubleshoot-write-probe';

export interface ConnectionTarget {
  readonly cluster: string;
  readonly remote: string;
  readonly config: EtcdClientConfig;
  readonly maxConnectedClusters: number;
  /** The local cluster's own etcd cluster ID: a remote config naming it is a mistake. */
  readonly localEtcdClusterId?: string | undefined;
  readonly timeoutMs?: number | undefined;
}

export interface ConnectionResult {
  readonly checks: Check[];
  /** Every step passed (warnings allowed). */
  readonly ok: boolean;
  /** The remote's cluster config, when retrieved. */
  readonly clusterConfig?: CiliumClusterConfig | undefined;
  readonly etcdClusterId?: string | undefined;
  /** Open while `ok`: later checks read the remote with it; the caller closes it. */
  readonly client?: Etcd3 | undefined;
}

interface Endpoint {
  readonly url: string;
  readonly host: string;
  readonly port: number;
  readonly tls: boolean;
}

function endpointOf(url: string): Endpoint {
  const u = new URL(url);
  const host = u.hostname.replace(/^\[(.*)\]$/, '$1');
  const tls = u.protocol === 'https:';
  return { url, host, port: Number(u.port || (tls ? 443 : 80)), tls };
}

const ETCD_DOWN = (remote: string): { hint: string; log: string } => ({
  hint: `Is ${remote}'s etcd running (not stopped or overloaded)? Agents mark the cluster not ready within seconds`,
  log: 'Remote kvstore not responding; remote cluster not ready',
});

function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: NodeJS.Timeout | undefined;
  return Promise.race([
    p.finally(() => clearTimeout(timer)),
    new Promise<never>((_, reject) => {
      timer = setTimeout(() => {
        reject(new Error(`${what}: no answer within ${ms} ms`));
      }, ms);
    }),
  ]);
}

function daysLeft(validTo: string, now: number): number {
  return Math.floor((Date.parse(validTo) - now) / DAY_MS);
}

function cn(subject: string | Record<string, unknown> | undefined): string {
  if (subject === undefined) return '?';
  if (typeof subject === 'string') {
    const m = /CN=([^\n,]+)/.exec(subject);
    return m?.[1] ?? subject.replace(/\n/g, ', ');
  }
  const v = subject.CN;
  return typeof v === 'string' ? v : Array.isArray(v) ? v.join(',') : '?';
}

interface Pem {
  readonly ca?: Buffer | undefined;
  readonly cert?: Buffer | undefined;
  readonly key?: Buffer | undefined;
}

async function readPems(cfg: EtcdClientConfig): Promise<Pem> {
  const read = async (p: string | undefined): Promise<Buffer | undefined> =>
    p === undefined ? undefined : readFile(p);
  return {
    ca: await read(cfg.trustedCaFile),
    cert: await read(cfg.certFile),
    key: await read(cfg.keyFile),
  };
}

const CA_ERRORS = new Set([
  'UNABLE_TO_VERIFY_LEAF_SIGNATURE',
  'SELF_SIGNED_CERT_IN_CHAIN',
  'DEPTH_ZERO_SELF_SIGNED_CERT',
  'UNABLE_TO_GET_ISSUER_CERT',
  'UNABLE_TO_GET_ISSUER_CERT_LOCALLY',
  'CERT_SIGNATURE_FAILURE',
]);

/** Runs the chain; stops at the first failing step. */
export async function checkConnection(t: ConnectionTarget): Promise<ConnectionResult> {
  const timeoutMs = t.timeoutMs ?? 3_000;
  const checks: Check[] = [];
  const base = { cluster: t.cluster, remote: t.remote };
  const add = (
    id: string,
    status: CheckStatus,
    message: string,
    extra: Partial<Pick<Check, 'hint' | 'log' | 'details'>> = {},
  ): boolean => {
    checks.push({ id: `connection.${id}`, ...base, status, message, ...extra });
    return status !== 'fail';
  };
  const failed = (): ConnectionResult => ({ checks, ok: false });
  const endpoints = t.config.endpoints.map(endpointOf);

  // 1. Name resolution.
  const candidates = new Map<string, string[]>();
  const addrs = new Map<string, string>();
  const resolved: string[] = [];
  for (const ep of endpoints) {
    if (isIP(ep.host) !== 0) {
      candidates.set(ep.url, [ep.host]);
      resolved.push(`${ep.host} (an address)`);
      continue;
    }
    // The agents resolve through the config directory's host aliases first, as a pod's
    // /etc/hosts carries the seeds' hostAliases: check what they dial.
    const aliased = t.config.hostAliases?.get(ep.host.toLowerCase());
    if (aliased !== undefined) {
      candidates.set(ep.url, [aliased]);
      resolved.push(`${ep.host} → ${aliased} (host alias, ${HOST_ALIASES_FILE})`);
      continue;
    }
    try {
      const all = await withTimeout(lookup(ep.host, { all: true }), timeoutMs, 'lookup');
      if (all.length === 0) throw new Error('no address');
      candidates.set(
        ep.url,
        all.map((a) => a.address),
      );
      resolved.push(`${ep.host} → ${all.map((a) => a.address).join(', ')}`);
    } catch (err) {
      add('resolve', 'fail', `cannot resolve ${ep.host}: ${errorMessage(err)}`, {
        hint: `Make ${ep.host} resolvable where the agents run (Cilium: DNS or hostAliases for the clustermesh-apiserver of ${t.remote})`,
      });
      return failed();
    }
  }
  add('resolve', 'ok', resolved.join('; '));

  // 2. TCP.
  const tcp: string[] = [];
  for (const ep of endpoints) {
    const errors: string[] = [];
    // Any of its addresses will do, as for a dialer trying them in turn.
    for (const ip of candidates.get(ep.url) ?? [ep.host]) {
      const started = performance.now();
      try {
        await withTimeout(
          new Promise<void>((resolve, reject) => {
            const s = tcpConnect({ host: ip, port: ep.port });
            s.once('connect', () => {
              s.destroy();
              resolve();
            });
            s.once('error', (e) => {
              s.destroy();
              reject(e);
            });
          }),
          timeoutMs,
          'connect',
        );
        addrs.set(ep.url, ip);
        tcp.push(`${ip}:${ep.port} in ${(performance.now() - started).toFixed(1)} ms`);
        break;
      } catch (err) {
        errors.push(`${ip}:${ep.port}: ${errorMessage(err)}`);
      }
    }
    if (!addrs.has(ep.url)) {
      add('tcp', 'fail', `cannot connect to ${ep.url}: ${errors.join('; ')}`, {
        hint: `Is ${t.remote}'s etcd (clustermesh-apiserver) running and listening on port ${ep.port}? A firewall or an unrouted network between the clusters shows the same`,
        log: 'remote cluster connection failed, reconnecting',
      });
      return failed();
    }
  }
  add('tcp', 'ok', `connected to ${tcp.join('; ')}`);

  // 3. TLS.
  let pem: Pem;
  try {
    pem = await readPems(t.config);
  } catch (err) {
    add('tls', 'fail', `cannot read the TLS files of the config: ${errorMessage(err)}`, {
      hint: 'trusted-ca-file, cert-file and key-file must be readable by the agent (relative paths resolve against the config file)',
    });
    return failed();
  }
  const plaintext = endpoints.filter((e) => !e.tls);
  if (plaintext.length > 0) {
    add('tls', 'warn', `not encrypted: ${plaintext.map((e) => e.url).join(', ')} (http://)`, {
      hint: `Serve ${t.remote}'s etcd over https:// with client certificates; name trusted-ca-file, cert-file and key-file in the config`,
    });
  }
  for (const ep of endpoints.filter((e) => e.tls)) {
    const r = await tlsCheck(ep, addrs.get(ep.url) ?? ep.host, pem, t.remote, timeoutMs);
    // A process that accepts connections (the kernel does) but never answers a
    // ClientHello is a stopped or overloaded etcd, not a TLS problem: say so.
    if (r.noAnswer === true) {
      add(
        'etcd',
        'fail',
        `${t.remote}'s etcd does not answer: TLS ${r.message}`,
        ETCD_DOWN(t.remote),
      );
      return failed();
    }
    if (!add('tls', r.status, r.message, { hint: r.hint, details: r.details })) return failed();
  }

  // 4. etcd: reachable and answering, its version and cluster ID.
  const client = newClient(t.config, pem, timeoutMs);
  const deadline = (): { deadline: Date } => ({ deadline: new Date(Date.now() + timeoutMs) });
  let etcdClusterId: string | undefined;
  try {
    const ids = new Set<string>();
    const st = await client.maintenance.status(deadline());
    etcdClusterId = st.header.cluster_id;
    ids.add(etcdClusterId);
    if (t.localEtcdClusterId !== undefined && t.localEtcdClusterId === etcdClusterId) {
      add(
        'etcd',
        'fail',
        `etcd cluster ID ${etcdClusterId} is the local cluster's own etcd, not ${t.remote}'s`,
        {
          hint: `The config file for ${t.remote} names ${t.cluster}'s own endpoints: write ${t.remote}'s endpoints there`,
        },
      );
      client.close();
      return failed();
    }
    add('etcd', 'ok', `etcd ${st.version}, cluster ID ${etcdClusterId}, leader ${st.leader}`, {
      details: { version: st.version, clusterId: etcdClusterId },
    });
  } catch (err) {
    add(
      'etcd',
      'fail',
      `${t.remote}'s etcd does not answer: ${errorMessage(err)}`,
      ETCD_DOWN(t.remote),
    );
    client.close();
    return failed();
  }

  // 5. Authorization: the user may read the cluster's keys and must not write them.
  const user = certUser(pem.cert);
  const auth = await authCheck(client, t.remote, user, timeoutMs);
  if (!add('auth', auth.status, auth.message, { hint: auth.hint })) {
    client.close();
    return failed();
  }

  // 6. The remote's cluster config.
  let clusterConfig: CiliumClusterConfig;
  const key = clusterConfigKey(t.remote);
  try {
    const value = await client.get(key).options(deadline()).string();
    if (value === null) {
      add(
        'cluster-config',
        'fail',
        `remote cluster configuration required but not found (${key})`,
        {
          hint: `${t.remote}'s clustermesh-apiserver (or KVStoreMesh) writes ${key} at start: is it running and named ${t.remote}?`,
          log: 'cluster configuration not available yet',
        },
      );
      client.close();
      return failed();
    }
    clusterConfig = decodeClusterConfig(t.remote, value);
    validateRemoteClusterConfig(clusterConfig, {
      maxConnectedClusters: t.maxConnectedClusters === 511 ? 511 : 255,
    });
  } catch (err) {
    add('cluster-config', 'fail', `invalid cluster configuration at ${key}: ${errorMessage(err)}`, {
      hint: `Fix ${t.remote}'s cluster ID and max-connected-clusters: they must fit this cluster's limits`,
      log: 'remote cluster connection failed, reconnecting',
    });
    client.close();
    return failed();
  }
  const caps = clusterConfig.capabilities;
  add(
    'cluster-config',
    'ok',
    `retrieved: cluster ID ${clusterConfig.id}, max-connected-clusters ${caps.maxConnectedClusters || 'unset'}, sync canaries ${caps.syncedCanaries}, kvstoremesh ${caps.cached}`,
    { details: { id: clusterConfig.id, capabilities: caps } },
  );
  return { checks, ok: true, clusterConfig, etcdClusterId, client };
}

function certUser(cert: Buffer | undefined): string | undefined {
  if (cert === undefined) return undefined;
  try {
    return cn(new X509Certificate(cert).subject);
  } catch {
    return undefined;
  }
}

function newClient(cfg: EtcdClientConfig, pem: Pem, timeoutMs: number): Etcd3 {
  const dial = applyHostAliases(cfg.endpoints, cfg.hostAliases);
  const options: IOptions = {
    hosts: dial.endpoints,
    dialTimeout: timeoutMs,
    faultHandling: { host: () => noop, global: noop },
    // TLS verifies the endpoint's name, not the aliased IP the client dials.
    grpcOptions: tlsNameOverride(dial.serverName, pem.ca !== undefined),
  };
  if (pem.ca !== undefined || pem.cert !== undefined) {
    options.credentials = {
      rootCertificate: pem.ca ?? Buffer.alloc(0),
      ...(pem.cert === undefined ? {} : { certChain: pem.cert }),
      ...(pem.key === undefined ? {} : { privateKey: pem.key }),
    };
  }
  return new Etcd3(options);
}

/**
 * Read access, then write access without writing: a transaction whose compare never
 * holds (a create revision below 0) with a put in its success branch. etcd checks the
 * permissions of every operation of both branches before evaluating the compare, so a
 * read-only user gets "permission denied", while a user allowed to write gets a
 * transaction that did not succeed, and nothing is written either way.
 */
export async function authCheck(
  client: Etcd3,
  remote: string,
  user: string | undefined,
  timeoutMs: number,
): Promise<{ status: CheckStatus; message: string; hint?: string }> {
  const who = user === undefined ? 'no client certificate (anonymous)' : `user ${user}`;
  const deadline = { deadline: new Date(Date.now() + timeoutMs) };
  try {
    await client.get(clusterConfigKey(remote)).options(deadline).string();
  } catch (err) {
    return {
      status: 'fail',
      message: `${who} may not read ${remote}'s keys: ${errorMessage(err)}`,
      hint: `Grant ${user ?? 'the remote user'} read access to the cilium/ prefix of ${remote}'s etcd`,
    };
  }
  try {
    await client
      .if(WRITE_PROBE_KEY, 'Create', '<', 0)
      .then(client.put(WRITE_PROBE_KEY).value('x'))
      .options({ deadline: new Date(Date.now() + timeoutMs) })
      .commit();
  } catch (err) {
    const msg = errorMessage(err);
    if (/permission denied/i.test(msg)) {
      return { status: 'ok', message: `${who}: reads allowed, writes refused (read-only)` };
    }
    return { status: 'fail', message: `${who}: write probe failed: ${msg}` };
  }
  return {
    status: 'warn',
    message: `${who}: writes are allowed (etcd authentication is off, or the user may write)`,
    hint: `Give other clusters a read-only etcd user on ${remote}: a remote agent never writes there`,
  };
}

interface TlsOutcome {
  status: CheckStatus;
  message: string;
  hint?: string;
  details?: Record<string, unknown>;
  /** TCP connected, but the handshake got no answer at all: the server process is stuck. */
  noAnswer?: boolean;
}

async function tlsCheck(
  ep: Endpoint,
  ip: string,
  pem: Pem,
  remote: string,
  timeoutMs: number,
): Promise<TlsOutcome> {
  const now = Date.now();
  const servername = isIP(ep.host) === 0 ? ep.host : undefined;
  const trusted = pem.ca === undefined ? undefined : new X509Certificate(pem.ca);
  let sock: TLSSocket | undefined;
  try {
    const outcome = await withTimeout(
      new Promise<{ sock: TLSSocket; rejected?: string }>((resolve, reject) => {
        const s = tlsConnect({
          host: ip,
          port: ep.port,
          servername,
          ca: pem.ca,
          cert: pem.cert,
          key: pem.key,
          // Verified below, so that the report can say what is wrong.
          rejectUnauthorized: false,
        });
        sock = s;
        s.once('error', reject);
        s.once('secureConnect', () => {
          // With TLS 1.3 the server judges the client certificate after the client's
          // handshake ended: one request shows whether it was accepted.
          s.write(`GET /version HTTP/1.1\r\nHost: ${ep.host}\r\nConnection: close\r\n\r\n`);
          let got = '';
          s.on('data', (d: Buffer) => (got += d.toString('utf8')));
          s.once('end', () => {
            resolve({
              sock: s,
              rejected: got.startsWith('HTTP/') ? undefined : 'connection closed',
            });
          });
          s.removeListener('error', reject);
          s.once('error', (e) => {
            resolve({ sock: s, rejected: errorMessage(e) });
          });
        });
      }),
      timeoutMs,
      'TLS handshake',
    );
    const s = outcome.sock;
    const peer: PeerCertificate = s.getPeerCertificate();
    const cipher = s.getCipher();
    const proto = s.getProtocol() ?? '?';
    const serverCn = cn(peer.subject);
    const issuerCn = cn(peer.issuer);
    const serverDays = daysLeft(peer.valid_to, now);
    const clientCert = pem.cert === undefined ? undefined : new X509Certificate(pem.cert);
    const clientDays = clientCert === undefined ? undefined : daysLeft(clientCert.validTo, now);
    const details = {
      endpoint: ep.url,
      protocol: proto,
      cipher: cipher.name,
      server: {
        subject: serverCn,
        san: peer.subjectaltname ?? '',
        issuer: issuerCn,
        validTo: peer.valid_to,
      },
      client:
        clientCert === undefined
          ? null
          : {
              subject: cn(clientCert.subject),
              issuer: cn(clientCert.issuer),
              validTo: clientCert.validTo,
            },
      trustedCa: trusted === undefined ? null : cn(trusted.subject),
      authorizationError: s.authorized ? null : String(s.authorizationError),
    };
    const summary = `${proto} ${cipher.name}; server CN=${serverCn} (${peer.subjectaltname ?? 'no SAN'}) issued by CN=${issuerCn}, expires in ${serverDays} d`;
    const client =
      clientCert === undefined
        ? 'no client certificate'
        : `client CN=${cn(clientCert.subject)} issued by CN=${cn(clientCert.issuer)}, expires in ${clientDays ?? '?'} d`;
    const authErr = s.authorized ? undefined : String(s.authorizationError);
    if (authErr !== undefined) {
      const code = authErr.split(':')[0] ?? authErr;
      if (CA_ERRORS.has(code) || /unable to (verify|get)|self[- ]signed/i.test(authErr)) {
        return {
          status: 'fail',
          message: `CA mismatch at ${ep.url}: server certificate CN=${serverCn} is issued by CN=${issuerCn}, trusted-ca-file holds CN=${trusted === undefined ? 'none' : cn(trusted.subject)} (${code})`,
          hint: `Clusters of a mesh must share a CA: put the CA that signed ${remote}'s etcd certificate in trusted-ca-file (a bundle may hold several)`,
          details,
        };
      }
      if (/CERT_HAS_EXPIRED/.test(authErr)) {
        return {
          status: 'fail',
          message: `server certificate CN=${serverCn} at ${ep.url} expired on ${peer.valid_to}`,
          hint: `Renew ${remote}'s etcd server certificate`,
          details,
        };
      }
      if (/ALTNAME|Hostname\/IP does not match/i.test(authErr)) {
        return {
          status: 'fail',
          message: `server certificate CN=${serverCn} does not name ${ep.host} (${peer.subjectaltname ?? 'no SAN'})`,
          hint: `Issue ${remote}'s server certificate with ${ep.host} among its SANs, or use an endpoint it names`,
          details,
        };
      }
      return {
        status: 'fail',
        message: `server certificate at ${ep.url} not trusted: ${authErr}`,
        hint: `Check trusted-ca-file against ${remote}'s etcd server certificate`,
        details,
      };
    }
    if (outcome.rejected !== undefined) {
      return {
        status: 'fail',
        message: `${remote}'s etcd rejected the client certificate (${outcome.rejected}); ${client}`,
        hint: `cert-file must be signed by the CA ${remote}'s etcd trusts (its --trusted-ca-file)`,
        details,
      };
    }
    if (clientDays !== undefined && clientDays < 0) {
      return {
        status: 'fail',
        message: `client certificate expired: ${client}`,
        hint: 'Renew cert-file',
        details,
      };
    }
    if (
      serverDays < EXPIRY_WARNING_DAYS ||
      (clientDays !== undefined && clientDays < EXPIRY_WARNING_DAYS)
    ) {
      return {
        status: 'warn',
        message: `certificate expires in less than ${EXPIRY_WARNING_DAYS} days: ${summary}; ${client}`,
        hint: 'Renew the certificates before they expire: agents cannot reconnect with an expired one',
        details,
      };
    }
    if (clientCert === undefined) {
      return {
        status: 'warn',
        message: `${summary}; no client certificate (cert-file)`,
        hint: `Authenticate to ${remote}'s etcd with a client certificate (cert-file, key-file)`,
        details,
      };
    }
    return { status: 'ok', message: `${summary}; ${client}`, details };
  } catch (err) {
    const msg = errorMessage(err);
    const clientSide = /certificate|alert/i.test(msg);
    if (/no answer within/.test(msg)) return { status: 'fail', message: msg, noAnswer: true };
    return {
      status: 'fail',
      message: `TLS handshake with ${ep.url} failed: ${msg}`,
      hint: clientSide
        ? `${remote}'s etcd refused the client certificate: cert-file must be signed by the CA it trusts`
        : `Is ${ep.url} an https endpoint of ${remote}'s etcd?`,
    };
  } finally {
    sock?.destroy();
  }
}
