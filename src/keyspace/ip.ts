/**
 * STABLE KEYSPACE CONTRACT — IP, mask and CIDR text forms used in kvstore keys and
 * values. They follow Go's `net` package, because the reference system derives keys
 * (e.g. the ipcache `PrefixString()`) from `net.IP.String()` and readers compare keys
 * byte for byte.
 *
 * Deliberately stricter than `node:net`: no IPv4 leading zeros, and IPv6 zones
 * (`fe80::1%eth0`) only where the reference parses with `netip.ParseAddr`
 * ({@link isValidAddr}); `net.ParseIP`, used for ipcache and node addresses, refuses them.
 */

export type IPFamily = 4 | 6;

const IPV4_OCTET = /^(?:0|[1-9]\d{0,2})$/;
const IPV6_GROUP = /^[0-9a-fA-F]{1,4}$/;

function parseIPv4(s: string): Uint8Array | null {
  const parts = s.split('.');
  if (parts.length !== 4) return null;
  const out = new Uint8Array(4);
  for (let i = 0; i < 4; i++) {
    const p = parts[i] ?? '';
    if (!IPV4_OCTET.test(p)) return null;
    const n = Number(p);
    if (n > 255) return null;
    out[i] = n;
  }
  return out;
}

/** Parses colon groups into 16-bit values; a trailing dotted quad counts as two groups. */
function parseGroups(part: string, allowV4Tail: boolean): number[] | null {
  if (part === '') return [];
  const groups = part.split(':');
  const out: number[] = [];
  for (let i = 0; i < groups.length; i++) {
    const g = groups[i] ?? '';
    if (allowV4Tail && i === groups.length - 1 && g.includes('.')) {
      const v4 = parseIPv4(g);
      if (v4 === null) return null;
      out.push(((v4[0] ?? 0) << 8) | (v4[1] ?? 0), ((v4[2] ?? 0) << 8) | (v4[3] ?? 0));
      continue;
    }
    if (!IPV6_GROUP.test(g)) return null;
    out.push(parseInt(g, 16));
  }
  return out;
}

function parseIPv6(s: string): Uint8Array | null {
  const halves = s.split('::');
  if (halves.length > 2) return null;
  let groups: number[];
  if (halves.length === 1) {
    const all = parseGroups(s, true);
    if (all?.length !== 8) return null;
    groups = all;
  } else {
    const head = parseGroups(halves[0] ?? '', false);
    const tail = parseGroups(halves[1] ?? '', true);
    if (head === null || tail === null) return null;
    // Go requires `::` to stand for at least one zero group.
    const missing = 8 - head.length - tail.length;
    if (missing < 1) return null;
    groups = [...head, ...new Array<number>(missing).fill(0), ...tail];
  }
  const out = new Uint8Array(16);
  groups.forEach((g, i) => {
    out[2 * i] = g >> 8;
    out[2 * i + 1] = g & 0xff;
  });
  return out;
}

/**
 * Parses an IP address. Returns 4 bytes for dotted IPv4 and 16 bytes for any IPv6
 * form (including IPv4-mapped `::ffff:a.b.c.d`), or `null` when invalid.
 */
export function parseIP(s: string): Uint8Array | null {
  if (s.includes(':')) return parseIPv6(s);
  if (s.includes('.')) return parseIPv4(s);
  return null;
}

function isV4Mapped(b: Uint8Array): boolean {
  if (b.length !== 16) return false;
  for (let i = 0; i < 10; i++) if (b[i] !== 0) return false;
  return b[10] === 0xff && b[11] === 0xff;
}

/** Go's `IP.To4() != nil`: plain IPv4 or IPv4-mapped IPv6. */
export function ipFamily(b: Uint8Array): IPFamily {
  return b.length === 4 || isV4Mapped(b) ? 4 : 6;
}

/** Formats bytes exactly like Go's `net.IP.String()` (RFC 5952, mapped IPv4 dotted). */
export function formatIP(b: Uint8Array): string {
  if (b.length === 4) return Array.from(b).join('.');
  if (b.length !== 16) throw new TypeError(`invalid IP length ${b.length}`);
  if (isV4Mapped(b)) return Array.from(b.subarray(12)).join('.');
  const groups: number[] = [];
  for (let i = 0; i < 16; i += 2) groups.push(((b[i] ?? 0) << 8) | (b[i + 1] ?? 0));
  // The first longest run of two or more zero groups becomes `::`.
  let bestStart = -1;
  let bestLen = 0;
  for (let i = 0; i < 8;) {
    if (groups[i] !== 0) {
      i++;
      continue;
    }
    let j = i;
    while (j < 8 && groups[j] === 0) j++;
    if (j - i > bestLen) {
      bestStart = i;
      bestLen = j - i;
    }
    i = j;
  }
  if (bestLen < 2) return groups.map((g) => g.toString(16)).join(':');
  const head = groups.slice(0, bestStart).map((g) => g.toString(16));
  const tail = groups.slice(bestStart + bestLen).map((g) => g.toString(16));
  return `${head.join(':')}::${tail.join(':')}`;
}

/** The canonical (Go `String()`) form of an IP address, or `null` if it does not parse. */
/** Dotted-quad IPv4 without leading zeros (what Go's ParseIP accepts). */
const IPV4 = /^(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)(?:\.(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)){3}$/;

export function canonicalIP(s: string): string | null {
  // Plain dotted-quad IPv4 is already canonical: no bytes, no re-formatting (hot path
  // of every ipcache entry a remote cluster sends).
  if (IPV4.test(s)) return s;
  const b = parseIP(s);
  return b === null ? null : formatIP(b);
}

export function isValidIP(s: string): boolean {
  // Hot path (thousands of backends per service update): plain IPv4 without allocation.
  if (IPV4.test(s)) return true;
  return parseIP(s) !== null;
}

/**
 * Go's `netip.ParseAddr` acceptance, which the reference applies to ClusterService
 * frontend and backend keys: like {@link isValidIP}, plus an IPv6 address may carry a
 * non-empty zone (`fe80::1%eth0`).
 */
export function isValidAddr(s: string): boolean {
  const pct = s.indexOf('%');
  if (pct < 0) return isValidIP(s);
  const addr = s.slice(0, pct);
  return pct < s.length - 1 && addr.includes(':') && parseIPv6(addr) !== null;
}

function maskBytes(prefixLen: number, bits: number): Uint8Array {
  const out = new Uint8Array(bits / 8);
  for (let i = 0; i < out.length; i++) {
    const remaining = prefixLen - i * 8;
    out[i] = remaining >= 8 ? 0xff : remaining <= 0 ? 0 : (0xff << (8 - remaining)) & 0xff;
  }
  return out;
}

/** Number of leading one bits if the mask is canonical (ones then zeros), else `null`. */
function onesOf(mask: Uint8Array): number | null {
  let ones = 0;
  let seenZero = false;
  for (const byte of mask) {
    for (let bit = 7; bit >= 0; bit--) {
      if ((byte >> bit) & 1) {
        if (seenZero) return null;
        ones++;
      } else {
        seenZero = true;
      }
    }
  }
  return ones;
}

const BASE64 = /^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/;

/** Decodes a Go `net.IPMask` JSON value (standard base64 of the raw bytes). */
export function decodeMask(b64: string): Uint8Array | null {
  if (!BASE64.test(b64)) return null;
  return new Uint8Array(Buffer.from(b64, 'base64'));
}

/** Go's JSON form of `net.CIDRMask(len, bits)`: e.g. /24 IPv4 → `"////AA=="`. */
export function maskFromPrefixLen(prefixLen: number, family: IPFamily): string {
  const bits = family === 4 ? 32 : 128;
  if (!Number.isInteger(prefixLen) || prefixLen < 0 || prefixLen > bits) {
    throw new RangeError(`invalid prefix length ${prefixLen} for IPv${family}`);
  }
  return Buffer.from(maskBytes(prefixLen, bits)).toString('base64');
}

/**
 * Prefix length of a base64 mask as written by Go (`IPMask.Size()` ones), or `null`
 * when the value is not base64, not 4 or 16 bytes long, or not a canonical mask.
 */
export function prefixLenFromMask(b64: string): number | null {
  const m = decodeMask(b64);
  if (m === null || (m.length !== 4 && m.length !== 16)) return null;
  return onesOf(m);
}

export interface ParsedCIDR {
  /** Network address (host bits cleared), 4 or 16 bytes. */
  readonly ip: Uint8Array;
  readonly prefixLen: number;
  /** 32 or 128. */
  readonly bits: number;
}

/** Parses `addr/len` like Go's `net.ParseCIDR`, returning the network address. */
export function parseCIDR(s: string): ParsedCIDR | null {
  const slash = s.indexOf('/');
  if (slash < 0) return null;
  const ip = parseIP(s.slice(0, slash));
  const lenText = s.slice(slash + 1);
  if (ip === null || !/^(?:0|[1-9]\d{0,2})$/.test(lenText)) return null;
  const bits = ip.length * 8;
  const prefixLen = Number(lenText);
  if (prefixLen > bits) return null;
  const mask = maskBytes(prefixLen, bits);
  const network = ip.map((b, i) => b & (mask[i] ?? 0));
  return { ip: network, prefixLen, bits };
}

/** Canonical `network/len` text of a CIDR, or `null` when it does not parse. */
export function canonicalCIDR(s: string): string | null {
  const c = parseCIDR(s);
  return c === null ? null : `${formatIP(c.ip)}/${c.prefixLen}`;
}

/** Go's JSON form of Cilium's `*cidr.CIDR` (an embedded `*net.IPNet`). */
export interface GoIPNet {
  readonly IP: string;
  readonly Mask: string;
}

export function cidrToIPNet(cidr: string): GoIPNet | null {
  const c = parseCIDR(cidr);
  if (c === null) return null;
  return {
    IP: formatIP(c.ip),
    Mask: Buffer.from(maskBytes(c.prefixLen, c.bits)).toString('base64'),
  };
}

/**
 * Inverse of {@link cidrToIPNet}, following Go's `IPNet.String()`: an IPv4 address
 * with a 16-byte mask uses the mask's last 4 bytes. Non-canonical masks are rejected.
 */
export function ipNetToCidr(ipText: string, maskB64: string): string | null {
  const ip = parseIP(ipText);
  let mask = decodeMask(maskB64);
  if (ip === null || mask === null) return null;
  const v4 = ipFamily(ip) === 4;
  if (mask.length === 16 && v4) mask = mask.subarray(12);
  if (mask.length !== (v4 ? 4 : 16)) return null;
  const ones = onesOf(mask);
  return ones === null ? null : `${formatIP(ip)}/${ones}`;
}
