/**
 * STABLE KEYSPACE CONTRACT — timestamps stored as values: the heartbeat
 * (`cilium/.heartbeat`), the sync canaries (`cilium/synced/...`) and MCS export
 * creation times. The reference writes Go's `time.RFC3339` (second precision, no
 * fractional part); this module always writes UTC (`...Z`) and reads any RFC 3339
 * offset and optional fraction, like Go's `time.Parse(time.RFC3339, …)`.
 */

import { ClusterMeshError, ErrorCode } from '../lib/errors.js';

/** Go's zero `time.Time` (0001-01-01T00:00:00Z) in epoch milliseconds. */
export const GO_ZERO_TIME_MS = -62135596800000;

/** `2026-11-23T02:18:54Z`: UTC, seconds truncated like Go's RFC3339 layout. */
export function formatRFC3339(date: Date): string {
  return date.toISOString().replace(/\.\d{3}Z$/, 'Z');
}

/** The heartbeat / canary value for `date` (default: now). */
export function rfc3339Now(date: Date = new Date()): string {
  return formatRFC3339(date);
}

const RFC3339 =
  /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2}):(\d{2})(?:\.(\d{1,9}))?(?:Z|([+-])(\d{2}):(\d{2}))$/;

/** Parses an RFC 3339 timestamp; throws ClusterMeshError(InvalidEntry) when malformed. */
export function parseRFC3339(text: string): Date {
  const m = RFC3339.exec(text);
  const invalid = () =>
    new ClusterMeshError(ErrorCode.InvalidEntry, `invalid RFC 3339 time ${JSON.stringify(text)}`);
  if (m === null) throw invalid();
  const [year, month, day, hour, minute, second] = m.slice(1, 7).map(Number) as [
    number,
    number,
    number,
    number,
    number,
    number,
  ];
  const fraction = m[7] ?? '';
  const sign = m[8] === '-' ? -1 : 1;
  const offH = Number(m[9] ?? '0');
  const offM = Number(m[10] ?? '0');
  if (month < 1 || month > 12 || hour > 23 || minute > 59 || second > 59) throw invalid();
  if (offH > 23 || offM > 59) throw invalid();
  const date = new Date(0);
  // setUTCFullYear, unlike Date.UTC, does not map years 0..99 to 1900..1999.
  date.setUTCFullYear(year, month - 1, day);
  if (date.getUTCDate() !== day) throw invalid();
  const millis = fraction === '' ? 0 : Math.floor(Number(`0.${fraction}`) * 1000);
  date.setUTCHours(hour, minute, second, millis);
  return new Date(date.getTime() - sign * (offH * 60 + offM) * 60_000);
}

/** Value of `cilium/.heartbeat`. */
export function encodeHeartbeat(date: Date = new Date()): string {
  return formatRFC3339(date);
}

/** Parses a heartbeat value (throws InvalidEntry when malformed). */
export function decodeHeartbeat(value: string): Date {
  return parseRFC3339(value);
}

/** Value of a `cilium/synced/<cluster>/<prefix>` canary. */
export function encodeSyncedCanary(date: Date = new Date()): string {
  return formatRFC3339(date);
}

/** Parses a canary value (throws InvalidEntry when malformed). */
export function decodeSyncedCanary(value: string): Date {
  return parseRFC3339(value);
}
