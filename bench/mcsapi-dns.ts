/**
 * `clusterset.local` A queries per second, measured with dnsperf (Debian package `dnsperf`),
 * against a minimal static dns-packet responder in the same run.
 *
 * Ours: the cluster DNS server with its registry source on a memory kvstore holding
 * `--imports` ServiceImports (ClusterSetIP) and as many Headless ones, each of those with
 * two MCS EndpointSlices of two ready endpoints (two clusters). The responder decodes each
 * query with dns-packet, takes the same answers from a map prepared in advance, and encodes
 * them: what any dns-packet server pays, without the zone's logic. Both run in this
 * process, one at a time, on loopback; after a second of warm-up each, dnsperf runs
 * `--seconds` per phase, the two alternated `--rounds` times, and the median is reported.
 *
 * `npm run bench -- mcsapi-dns [--imports N (1000)] [--seconds S (5)] [--rounds R (3)]
 * [--outstanding Q (100)]`
 */
import { spawn } from 'node:child_process';
import { createSocket, type Socket } from 'node:dgram';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, StringAnswer } from 'dns-packet';
import { createRegistryDnsSource } from '../src/dns/registry-source.js';
import { startDnsServer } from '../src/dns/server.js';
import { MemoryBackend } from '../src/kvstore/memory.js';
import { MemoryStore } from '../src/kvstore/memory-store.js';
import { silentLogger } from '../src/lib/logger.js';
import { Registry } from '../src/registry/registry.js';
import type { RegistryObject } from '../src/registry/types.js';
import { flag, report } from './lib.js';

const OURS_HOST = '127.208.0.10';
const RAW_HOST = '127.208.0.11';
const ZONE = 'clusterset.local';
const TTL = 5;

interface Phase {
  readonly qps: number;
  readonly lost: number;
  readonly latencyMs: number;
}

export async function main(args: string[]): Promise<void> {
  const imports = flag(args, 'imports', 'positive integer', 1000);
  const seconds = flag(args, 'seconds', 'positive integer', 5);
  const rounds = flag(args, 'rounds', 'positive integer', 3);
  const outstanding = flag(args, 'outstanding', 'positive integer', 100);
  if (imports > 2000) throw new Error('--imports: at most 2000 (addresses run out)');
  await requireDnsperf();

  const backend = new MemoryBackend(new MemoryStore());
  const registry = new Registry(backend);
  const dns = createRegistryDnsSource(backend, silentLogger);
  const ac = new AbortController();
  const running = dns.run(ac.signal);
  const dir = await mkdtemp(join(tmpdir(), 'mcsapi-dns-bench-'));
  const expected = new Map<string, Answer[]>();
  const objects: RegistryObject[] = [];
  for (let i = 0; i < imports; i++) {
    const vip = address(128, i);
    objects.push(serviceImport(`svc-${String(i)}`, 'ClusterSetIP', [vip]));
    expected.set(`svc-${String(i)}.default.svc.${ZONE}`, [aRecord(`svc-${String(i)}`, vip)]);
    const name = `hl-${String(i)}`;
    objects.push(serviceImport(name, 'Headless', []));
    const ips: string[] = [];
    for (const cluster of [1, 2]) {
      const pair = [address(160 + cluster * 16, 2 * i), address(160 + cluster * 16, 2 * i + 1)];
      ips.push(...pair);
      objects.push(mcsSlice(`${name}-cluster${String(cluster)}`, name, cluster, pair));
    }
    expected.set(
      `${name}.default.svc.${ZONE}`,
      ips.map((ip) => aRecord(name, ip)),
    );
  }
  const setupStart = performance.now();
  for (let i = 0; i < objects.length; i += 500) await registry.apply(objects.slice(i, i + 500));
  const setupMs = performance.now() - setupStart;

  const ours = await startDnsServer({ host: OURS_HOST, port: 0, source: dns.source, ttl: TTL });
  const raw = await startStaticResponder(RAW_HOST, expected);
  try {
    const names = [...expected.keys()];
    await waitForAnswers(ours.port, names, expected);
    await checkSame(ours.port, raw.port, names);

    const files = {
      clusterSetIP: join(dir, 'clusterset-ip.txt'),
      headless: join(dir, 'headless.txt'),
    };
    await writeFile(files.clusterSetIP, queryFile(names.filter((n) => n.startsWith('svc-'))));
    await writeFile(files.headless, queryFile(names.filter((n) => n.startsWith('hl-'))));

    const results: Record<'clusterSetIP' | 'headless', { ours: Phase[]; raw: Phase[] }> = {
      clusterSetIP: { ours: [], raw: [] },
      headless: { ours: [], raw: [] },
    };
    // Unmeasured: both servers' code paths compiled before the first phase counts.
    for (const [host, port] of [
      [OURS_HOST, ours.port],
      [RAW_HOST, raw.port],
    ] as const) {
      await dnsperf(host, port, files.clusterSetIP, 1, outstanding);
    }
    for (let r = 0; r < rounds; r++) {
      for (const kind of ['clusterSetIP', 'headless'] as const) {
        // Alternate which goes first, so that neither always gets the warmer machine.
        const order = r % 2 === 0 ? (['ours', 'raw'] as const) : (['raw', 'ours'] as const);
        for (const who of order) {
          const host = who === 'ours' ? OURS_HOST : RAW_HOST;
          const port = who === 'ours' ? ours.port : raw.port;
          results[kind][who].push(await dnsperf(host, port, files[kind], seconds, outstanding));
        }
      }
    }
    const median = (phases: readonly Phase[], pick: (p: Phase) => number): number => {
      const sorted = phases.map(pick).sort((a, b) => a - b);
      return sorted[Math.floor(sorted.length / 2)] ?? NaN;
    };
    const qps = (kind: 'clusterSetIP' | 'headless', who: 'ours' | 'raw'): number =>
      median(results[kind][who], (p) => p.qps);
    const latency = (kind: 'clusterSetIP' | 'headless', who: 'ours' | 'raw'): number =>
      median(results[kind][who], (p) => p.latencyMs);
    const lost = (who: 'ours' | 'raw'): number =>
      [...results.clusterSetIP[who], ...results.headless[who]].reduce((n, p) => n + p.lost, 0);
    report(
      'mcsapi-dns',
      [
        {
          metric: 'ClusterSetIP A',
          ours: qps('clusterSetIP', 'ours'),
          raw: qps('clusterSetIP', 'raw'),
          unit: 'queries/s',
          higherIsBetter: true,
          goal: '>= 0.7x',
        },
        {
          metric: 'Headless A (4 addresses)',
          ours: qps('headless', 'ours'),
          raw: qps('headless', 'raw'),
          unit: 'queries/s',
          higherIsBetter: true,
        },
        {
          metric: 'ClusterSetIP A mean latency',
          ours: latency('clusterSetIP', 'ours'),
          raw: latency('clusterSetIP', 'raw'),
          unit: 'ms',
          higherIsBetter: false,
        },
      ],
      {
        imports,
        seconds,
        rounds,
        outstanding,
        setupMs: Number(setupMs.toFixed(1)),
        lostOurs: lost('ours'),
        lostRaw: lost('raw'),
        samples: {
          ours: results.clusterSetIP.ours.map((p) => Math.round(p.qps)),
          raw: results.clusterSetIP.raw.map((p) => Math.round(p.qps)),
        },
      },
      ['clustermesh', 'static dns-packet'],
    );
  } finally {
    await ours.close();
    await raw.close();
    ac.abort();
    await running;
    await backend.close();
    await rm(dir, { recursive: true, force: true });
  }
}

/** `127.208.<block + i / 256>.<i % 256>`: answer data only, never bound. */
function address(block: number, i: number): string {
  return `127.208.${String(block + Math.floor(i / 256))}.${String(i % 256)}`;
}

function aRecord(name: string, ip: string): StringAnswer {
  return {
    name: `${name}.default.svc.${ZONE}`,
    type: 'A',
    class: 'IN',
    ttl: TTL,
    data: ip,
  };
}

/** dnsperf's input: one `name type` line per query, walked in order and repeated. */
function queryFile(names: readonly string[]): string {
  return names.map((n) => `${n} A\n`).join('');
}

async function requireDnsperf(): Promise<void> {
  try {
    await run('dnsperf', ['-h']);
  } catch (err) {
    if ((err as { code?: unknown }).code === 'ENOENT') {
      throw new Error('dnsperf not found: install the Debian package dnsperf', { cause: err });
    }
    // `-h` exits non-zero on some builds; being found is what matters.
  }
}

function run(cmd: string, args: readonly string[]): Promise<string> {
  return new Promise((resolve, reject) => {
    // Not spawnSync: the servers under test answer from this process's event loop.
    const child = spawn(cmd, args, { stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    child.stdout.on('data', (b: Buffer) => (out += b.toString()));
    child.stderr.on('data', (b: Buffer) => (out += b.toString()));
    child.on('error', reject);
    child.on('close', (code) => {
      if (code === 0) resolve(out);
      else reject(new Error(`${cmd} exited ${String(code)}: ${out.slice(-500)}`));
    });
  });
}

async function dnsperf(
  host: string,
  port: number,
  file: string,
  seconds: number,
  outstanding: number,
): Promise<Phase> {
  const out = await run('dnsperf', [
    '-s',
    host,
    '-p',
    String(port),
    '-d',
    file,
    '-l',
    String(seconds),
    '-q',
    String(outstanding),
    '-t',
    '2',
  ]);
  const num = (re: RegExp): number => {
    const m = re.exec(out);
    if (m?.[1] === undefined) throw new Error(`unexpected dnsperf output:\n${out}`);
    return Number(m[1]);
  };
  return {
    qps: num(/Queries per second:\s+([\d.]+)/),
    lost: num(/Queries lost:\s+(\d+)/),
    latencyMs: num(/Average Latency \(s\):\s+([\d.]+)/) * 1000,
  };
}

interface StaticResponder {
  readonly port: number;
  close(): Promise<void>;
}

/** The baseline: decode, look the answers up, encode, send. */
async function startStaticResponder(
  host: string,
  answers: ReadonlyMap<string, Answer[]>,
): Promise<StaticResponder> {
  const sock: Socket = createSocket('udp4');
  sock.on('message', (msg, peer) => {
    let query: DecodedPacket;
    try {
      query = dnsPacket.decode(msg);
    } catch {
      return;
    }
    const question = query.questions?.[0];
    const found = question === undefined ? undefined : answers.get(question.name.toLowerCase());
    const response = dnsPacket.encode({
      type: 'response',
      id: query.id ?? 0,
      flags:
        dnsPacket.AUTHORITATIVE_ANSWER |
        ((query.flags ?? 0) & dnsPacket.RECURSION_DESIRED) |
        (found === undefined ? 3 : 0),
      questions: query.questions ?? [],
      answers: found ?? [],
    });
    sock.send(response, peer.port, peer.address);
  });
  await new Promise<void>((resolve, reject) => {
    sock.once('error', reject);
    sock.bind(0, host, () => {
      sock.off('error', reject);
      resolve();
    });
  });
  return {
    port: sock.address().port,
    close: () =>
      new Promise<void>((resolve) => {
        sock.close(() => {
          resolve();
        });
      }),
  };
}

async function query(port: number, host: string, name: string): Promise<DecodedPacket> {
  const sock = createSocket('udp4');
  try {
    return await new Promise<DecodedPacket>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no answer from ${host}:${String(port)} for ${name}`));
      }, 2000);
      sock.on('message', (msg) => {
        clearTimeout(timer);
        resolve(dnsPacket.decode(msg));
      });
      sock.send(
        dnsPacket.encode({ type: 'query', id: 1, questions: [{ name, type: 'A' }] }),
        port,
        host,
      );
    });
  } finally {
    sock.close();
  }
}

function addresses(p: DecodedPacket): string {
  return (p.answers ?? [])
    .map((a) => (a.type === 'A' ? `${a.name} ${String(a.ttl)} ${a.data}` : a.type))
    .join(',');
}

/** The registry source is fed asynchronously: wait until every name answers as expected. */
async function waitForAnswers(
  port: number,
  names: readonly string[],
  expected: ReadonlyMap<string, Answer[]>,
): Promise<void> {
  const deadline = Date.now() + 60_000;
  const last = names[names.length - 1] ?? '';
  while (Date.now() < deadline) {
    const got = await query(port, OURS_HOST, last);
    if ((got.answers ?? []).length === (expected.get(last) ?? []).length) return;
    await new Promise((resolve) => setTimeout(resolve, 100));
  }
  throw new Error('the DNS source did not sync within 60 s');
}

/** Both servers must give the same answers, or the comparison means nothing. */
async function checkSame(
  oursPort: number,
  rawPort: number,
  names: readonly string[],
): Promise<void> {
  const step = Math.max(1, Math.floor(names.length / 50));
  for (let i = 0; i < names.length; i += step) {
    const name = names[i] ?? '';
    const [a, b] = [await query(oursPort, OURS_HOST, name), await query(rawPort, RAW_HOST, name)];
    if (addresses(a) !== addresses(b)) {
      throw new Error(`answers differ for ${name}: ${addresses(a)} vs ${addresses(b)}`);
    }
  }
}

function serviceImport(
  name: string,
  type: 'ClusterSetIP' | 'Headless',
  ips: string[],
): RegistryObject {
  return {
    apiVersion: 'multicluster.x-k8s.io/v1beta1',
    kind: 'ServiceImport',
    metadata: { name, namespace: 'default' },
    spec: { type, ips, ports: [{ name: 'http', protocol: 'TCP', port: 80 }] },
    status: { clusters: [{ cluster: 'cluster1' }, { cluster: 'cluster2' }] },
  };
}

function mcsSlice(
  name: string,
  importName: string,
  cluster: number,
  ips: string[],
): RegistryObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: 'default',
      labels: {
        'kubernetes.io/service-name': `derived-${importName}`,
        'multicluster.kubernetes.io/service-name': importName,
        'multicluster.kubernetes.io/source-cluster': `cluster${String(cluster)}`,
      },
    },
    addressType: 'IPv4',
    endpoints: ips.map((ip) => ({ addresses: [ip], conditions: { ready: true } })),
    ports: [{ name: 'http', port: 80 }],
  };
}
