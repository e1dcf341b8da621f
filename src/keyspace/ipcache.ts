/**
 * STABLE KEYSPACE CONTRACT — the IPIdentityPair value at
 * `cilium/state/ip/v1/default/<ip or ip/len>` (reference `pkg/identity/identity.go`,
 * explicit JSON tags). `Mask` is Go's `net.IPMask`: base64 of the raw mask bytes
 * (`"////AA=="` for an IPv4 /24) or `null` for host entries.
 */

import { z } from 'zod';
import { goArray, goInt, goNull, goString, goStruct } from './gojson.js';
import {
  canonicalIP,
  decodeMask,
  maskFromPrefixLen,
  parseCIDR,
  parseIP,
  ipFamily,
  formatIP,
  prefixLenFromMask,
} from './ip.js';
import {
  goObject,
  invalidEntry,
  invalidValue,
  parseValue,
  zList,
  zString,
  zUint16,
  zUint32,
  zUint8,
} from './codec.js';

export interface NamedPort {
  readonly Name: string;
  readonly Port: number;
  readonly Protocol: string;
}

export interface IPIdentityPair {
  /** Canonical IP text (Go `net.IP.String()`). */
  readonly IP: string;
  /** Base64 mask bytes for a prefix entry, `null` for a host entry. */
  readonly Mask: string | null;
  /** Node IP = tunnel endpoint; `''` when unset. */
  readonly HostIP: string;
  /** Numeric security identity. */
  readonly ID: number;
  /** Encryption key index. */
  readonly Key: number;
  readonly Metadata: string;
  readonly K8sNamespace?: string;
  readonly K8sPodName?: string;
  /** Newer releases only; written when non-empty. */
  readonly K8sServiceAccount?: string;
  readonly NamedPorts?: readonly NamedPort[];
}

/**
 * The pair's key name (reference `PrefixString()`): `<ip>` for host entries,
 * `<ip>/<ones>` otherwise. Throws on an unparsable IP or a non-canonical mask.
 */
export function ipIdentityPairKeyName(pair: Pick<IPIdentityPair, 'IP' | 'Mask'>): string {
  const ip = canonicalIP(pair.IP);
  if (ip === null) throw invalidValue('ipcache entry', `invalid IP ${JSON.stringify(pair.IP)}`);
  if (pair.Mask === null) return ip;
  const ones = prefixLenFromMask(pair.Mask);
  if (ones === null) {
    throw invalidValue('ipcache entry', `invalid mask ${JSON.stringify(pair.Mask)}`);
  }
  return `${ip}/${ones}`;
}

/**
 * `IP` and `Mask` for an address (`"10.0.0.1"` → host entry with `Mask: null`) or a
 * prefix (`"10.0.0.0/24"` → network address plus mask).
 */
export function ipAndMaskFor(addressOrPrefix: string): Pick<IPIdentityPair, 'IP' | 'Mask'> {
  if (!addressOrPrefix.includes('/')) {
    const ip = canonicalIP(addressOrPrefix);
    if (ip === null)
      throw invalidValue('ipcache entry', `invalid IP ${JSON.stringify(addressOrPrefix)}`);
    return { IP: ip, Mask: null };
  }
  const c = parseCIDR(addressOrPrefix);
  if (c === null)
    throw invalidValue('ipcache entry', `invalid prefix ${JSON.stringify(addressOrPrefix)}`);
  return { IP: formatIP(c.ip), Mask: maskFromPrefixLen(c.prefixLen, ipFamily(c.ip)) };
}

function omitEmpty(s: string | undefined) {
  return s === undefined || s === '' ? undefined : goString(s);
}

/** Serialises like the reference's `json.Marshal(pair)`. */
export function encodeIPIdentityPair(pair: IPIdentityPair): string {
  const ip = parseIP(pair.IP);
  if (ip === null) throw invalidValue('ipcache entry', `invalid IP ${JSON.stringify(pair.IP)}`);
  let mask = goNull;
  if (pair.Mask !== null) {
    const bytes = decodeMask(pair.Mask);
    if (bytes === null || prefixLenFromMask(pair.Mask) === null)
      throw invalidValue('ipcache entry', `invalid mask ${JSON.stringify(pair.Mask)}`);
    mask = goString(Buffer.from(bytes).toString('base64'));
  }
  let hostIP = '';
  if (pair.HostIP !== '') {
    const h = canonicalIP(pair.HostIP);
    if (h === null)
      throw invalidValue('ipcache entry', `invalid HostIP ${JSON.stringify(pair.HostIP)}`);
    hostIP = h;
  }
  const ports = pair.NamedPorts;
  return goStruct([
    ['IP', goString(formatIP(ip))],
    ['Mask', mask],
    ['HostIP', goString(hostIP)],
    ['ID', goInt(pair.ID)],
    ['Key', goInt(pair.Key)],
    ['Metadata', goString(pair.Metadata)],
    ['K8sNamespace', omitEmpty(pair.K8sNamespace)],
    ['K8sPodName', omitEmpty(pair.K8sPodName)],
    ['K8sServiceAccount', omitEmpty(pair.K8sServiceAccount)],
    [
      'NamedPorts',
      ports === undefined || ports.length === 0
        ? undefined
        : goArray(ports, (p) =>
            goStruct([
              ['Name', goString(p.Name)],
              ['Port', goInt(p.Port)],
              ['Protocol', goString(p.Protocol)],
            ]),
          ),
    ],
  ]);
}

const pairSchema = goObject({
  IP: zString,
  Mask: z.string().nullish(),
  HostIP: zString,
  ID: zUint32,
  Key: zUint8,
  Metadata: zString,
  K8sNamespace: zString,
  K8sPodName: zString,
  K8sServiceAccount: zString,
  NamedPorts: zList(goObject({ Name: zString, Port: zUint16, Protocol: zString })),
});

type RawPair = z.output<typeof pairSchema>;

const PAIR_FIELDS = new Set([
  'IP',
  'Mask',
  'HostIP',
  'ID',
  'Key',
  'Metadata',
  'K8sNamespace',
  'K8sPodName',
  'K8sServiceAccount',
  'NamedPorts',
]);

const u = (v: unknown, max: number): v is number =>
  typeof v === 'number' && Number.isInteger(v) && v >= 0 && v <= max;
const str = (v: unknown): v is string | null | undefined =>
  v === undefined || v === null || typeof v === 'string';

/**
 * The common shape checked without zod: a remote cluster sends one value per
 * endpoint (hundreds of thousands at bootstrap), and the schema walk's garbage was a
 * large part of the agent's peak memory. Anything unusual (named ports, a wrong type)
 * returns undefined and goes through the schema, which also words the error.
 */
function fastPair(value: string): RawPair | undefined {
  let o: unknown;
  try {
    o = JSON.parse(value);
  } catch {
    return undefined;
  }
  if (typeof o !== 'object' || o === null || Array.isArray(o)) return undefined;
  const r = o as Record<string, unknown>;
  // Field names in another case select a field in Go; the schema path folds them.
  for (const k in r) if (!PAIR_FIELDS.has(k)) return undefined;
  const { IP, Mask, HostIP, ID, Key, Metadata, K8sNamespace, K8sPodName, K8sServiceAccount } = r;
  if (!str(IP) || !str(Mask) || !str(HostIP) || !str(Metadata)) return undefined;
  if (!str(K8sNamespace) || !str(K8sPodName) || !str(K8sServiceAccount)) return undefined;
  if (!(ID === undefined || ID === null || u(ID, 0xffffffff))) return undefined;
  if (!(Key === undefined || Key === null || u(Key, 0xff))) return undefined;
  if (r.NamedPorts !== undefined && r.NamedPorts !== null) return undefined;
  return {
    IP: IP ?? '',
    Mask,
    HostIP: HostIP ?? '',
    ID: ID ?? 0,
    Key: Key ?? 0,
    Metadata: Metadata ?? '',
    K8sNamespace: K8sNamespace ?? '',
    K8sPodName: K8sPodName ?? '',
    K8sServiceAccount: K8sServiceAccount ?? '',
    NamedPorts: [],
  };
}

/**
 * Parses and validates an ipcache value. `keySuffix` is the key below
 * `cilium/state/ip/v1/default` (or `cilium/cache/ip/v1/<cluster>`) and must equal the
 * pair's `PrefixString()`.
 */
export function decodeIPIdentityPair(keySuffix: string, value: string): IPIdentityPair {
  const raw = fastPair(value) ?? parseValue(pairSchema, 'ipcache', keySuffix, value);
  const fail = (reason: string) => invalidEntry('ipcache', keySuffix, reason);
  const ip = canonicalIP(raw.IP);
  if (ip === null) throw fail(`invalid IP address: ${JSON.stringify(raw.IP)}`);
  let mask: string | null = null;
  if (raw.Mask !== null && raw.Mask !== undefined) {
    if (prefixLenFromMask(raw.Mask) === null)
      throw fail(`invalid mask ${JSON.stringify(raw.Mask)}`);
    mask = raw.Mask;
  }
  let hostIP = '';
  if (raw.HostIP !== '') {
    const h = canonicalIP(raw.HostIP);
    if (h === null) throw fail(`invalid HostIP: ${JSON.stringify(raw.HostIP)}`);
    hostIP = h;
  }
  const got = ipIdentityPairKeyName({ IP: ip, Mask: mask });
  if (got !== keySuffix)
    throw fail(`IP address does not match key: expected ${keySuffix}, got ${got}`);

  const pair: {
    -readonly [K in keyof IPIdentityPair]: IPIdentityPair[K];
  } = { IP: ip, Mask: mask, HostIP: hostIP, ID: raw.ID, Key: raw.Key, Metadata: raw.Metadata };
  if (raw.K8sNamespace !== '') pair.K8sNamespace = raw.K8sNamespace;
  if (raw.K8sPodName !== '') pair.K8sPodName = raw.K8sPodName;
  if (raw.K8sServiceAccount !== '') pair.K8sServiceAccount = raw.K8sServiceAccount;
  if (raw.NamedPorts.length > 0) pair.NamedPorts = raw.NamedPorts;
  return pair;
}
