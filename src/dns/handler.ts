import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, OptAnswer, Packet } from 'dns-packet';
import type { Logger } from 'pino';
import { errorMessage } from '../lib/errors.js';
import { REFUSED, canonicalName, lookup, soaRecord, zoneOf, type ZoneOptions } from './answer.js';
import { lookupClusterSet } from './clusterset.js';

/** Counters a test or a status page can read; never reset. */
export interface DnsStats {
  /** Well-formed queries answered (any rcode). */
  queries: number;
  nxdomain: number;
  refused: number;
  /** Datagrams or frames dropped as malformed, and responses that failed to encode. */
  errors: number;
}

export const Rcode = {
  NoError: 0,
  FormErr: 1,
  ServFail: 2,
  NxDomain: 3,
  NotImp: 4,
  Refused: 5,
} as const;

const OPCODE_QUERY = 0;
/** Without EDNS a UDP response may not exceed 512 bytes (RFC 1035 §4.2.1). */
const UDP_MIN = 512;
const UDP_MAX = 4096;
const TCP_MAX = 65535;

export interface QueryContext {
  /** The zones served: the cluster's own and, usually, the clusterset's. */
  readonly zones: readonly ZoneOptions[];
  readonly stats: DnsStats;
  readonly log: Logger;
}

/**
 * One wire query in, one wire response out; `undefined` = drop it (malformed, or not a
 * query at all). Never throws: whatever arrives on the socket ends here.
 */
export function handleQuery(
  ctx: QueryContext,
  msg: Buffer,
  transport: 'udp' | 'tcp',
): Buffer | undefined {
  let query: DecodedPacket;
  try {
    query = dnsPacket.decode(msg);
  } catch (err) {
    ctx.stats.errors++;
    ctx.log.debug(
      { transport, bytes: msg.length, err: errorMessage(err) },
      'dropping bad DNS packet',
    );
    return undefined;
  }
  // Answering responses could make two servers ping-pong forever.
  if (query.flag_qr) {
    ctx.stats.errors++;
    ctx.log.debug({ transport }, 'dropping DNS response sent to the server');
    return undefined;
  }
  ctx.stats.queries++;
  const opt = query.additionals?.find((a): a is OptAnswer => a.type === 'OPT');
  const response = buildResponse(ctx, query);
  if (opt !== undefined) {
    (response.additionals ??= []).push(optRecord());
  }
  const limit =
    transport === 'tcp' ? TCP_MAX : Math.min(Math.max(opt?.udpPayloadSize ?? 0, UDP_MIN), UDP_MAX);
  try {
    const wire = dnsPacket.encode(response);
    if (wire.length <= limit) return wire;
    // Additional records are a courtesy: without them the answer may fit, and is then
    // complete (RFC 2181 §9 sets TC only when the answer itself is cut).
    const optOnly = opt === undefined ? [] : [optRecord()];
    if ((response.additionals?.length ?? 0) > optOnly.length) {
      const lean = dnsPacket.encode({ ...response, additionals: optOnly });
      if (lean.length <= limit) return lean;
    }
    // Too big for the transport: the client retries over TCP (RFC 7766).
    return dnsPacket.encode({
      ...response,
      flags: (response.flags ?? 0) | dnsPacket.TRUNCATED_RESPONSE,
      answers: [],
      authorities: [],
      additionals: optOnly,
    });
  } catch (err) {
    ctx.stats.errors++;
    ctx.log.debug({ transport, err: errorMessage(err) }, 'cannot encode DNS response');
    return undefined;
  }
}

/** Not a closure in `buildResponse`: one fewer allocation on every query. */
function respond(
  query: DecodedPacket,
  rcode: number,
  aa: boolean,
  sections: Partial<Packet> = {},
): Packet {
  const rd = (query.flags ?? 0) & dnsPacket.RECURSION_DESIRED;
  return {
    type: 'response',
    id: query.id ?? 0,
    flags: rd | (aa ? dnsPacket.AUTHORITATIVE_ANSWER : 0) | rcode,
    questions: query.questions ?? [],
    ...sections,
  };
}

function buildResponse(ctx: QueryContext, query: DecodedPacket): Packet {
  const questions = query.questions ?? [];

  const opcode = ((query.flags ?? 0) >> 11) & 0xf;
  if (opcode !== OPCODE_QUERY) return respond(query, Rcode.NotImp, false);
  const [question] = questions;
  if (question === undefined || questions.length !== 1) return respond(query, Rcode.FormErr, false);
  const qclass = question.class ?? 'IN';
  if (qclass !== 'IN' && qclass !== 'ANY') {
    ctx.stats.refused++;
    return respond(query, Rcode.Refused, false);
  }

  const name = canonicalName(question.name);
  const zone = zoneOf(ctx.zones, name);
  const result =
    zone === undefined
      ? REFUSED
      : zone.schema === 'clusterset'
        ? lookupClusterSet(zone, question.name, question.type, name)
        : lookup(zone, question.name, question.type, name);
  switch (result.kind) {
    case 'refused':
      ctx.stats.refused++;
      return respond(query, Rcode.Refused, false);
    case 'servfail':
      return respond(query, Rcode.ServFail, false);
    case 'nxdomain':
      ctx.stats.nxdomain++;
      return respond(query, Rcode.NxDomain, true, {
        authorities: zone === undefined ? [] : [soaRecord(zone)],
      });
    case 'found': {
      const authorities: Answer[] =
        result.answers.length === 0 && zone !== undefined ? [soaRecord(zone)] : [];
      return respond(query, Rcode.NoError, true, {
        answers: result.answers,
        authorities,
        additionals: result.additionals,
      });
    }
  }
}

function optRecord(): OptAnswer {
  return {
    name: '.',
    type: 'OPT',
    udpPayloadSize: UDP_MAX,
    extendedRcode: 0,
    ednsVersion: 0,
    flags: 0,
    flag_do: false,
    options: [],
  };
}
