import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket } from 'node:dgram';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, RecordType } from 'dns-packet';
import { podSearchPath, resolveA } from '../../src/dns/client.js';
import { DNS_SCHEMA_VERSION } from '../../src/dns/clusterset.js';
import { createRegistryDnsSource } from '../../src/dns/registry-source.js';
import type {
  ClusterSetRecordSource,
  DnsRecordSource,
  ImportedEndpointRecord,
  ServiceImportRecord,
} from '../../src/dns/records.js';
import { startDnsServer, type RunningDnsServer } from '../../src/dns/server.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { isClusterMeshError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';

// Only 127.208.x.x: other test files use other loopback ranges concurrently.
const HOST = '127.208.0.1';
const ZONE = 'clusterset.local';
const RCODE = { NOERROR: 0, SERVFAIL: 2, NXDOMAIN: 3, REFUSED: 5 } as const;

function ep(
  cluster: string,
  ip: string,
  hostname?: string,
  ports: ImportedEndpointRecord['ports'] = [],
): ImportedEndpointRecord {
  return { cluster, ip, hostname, ports };
}

const IMPORTS: Record<string, ServiceImportRecord> = {
  // The conformance suite's service: two ports that differ only in protocol.
  'default/hello': {
    type: 'ClusterSetIP',
    ips: ['127.208.128.10'],
    ports: [
      { name: 'tcp', port: 42, protocol: 'TCP' },
      { name: 'udp', port: 42, protocol: 'UDP' },
    ],
    endpoints: [ep('cluster1', '127.208.1.100', 'hello-0')],
  },
  'default/dual': {
    type: 'ClusterSetIP',
    ips: ['127.208.128.11', 'fd00:208::11'],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    endpoints: [],
  },
  // CoreDNS multicluster's handler fixture, spread over two clusters.
  'default/hdls': {
    type: 'Headless',
    ips: [],
    ports: [
      { name: 'http', port: 80, protocol: 'TCP' },
      { port: 9000, protocol: 'UDP' },
    ],
    endpoints: [
      ep('cluster1', '127.208.1.1', 'web-0'),
      ep('cluster1', '127.208.1.2', 'dup-name'),
      ep('cluster1', '127.208.1.3', 'dup-name'),
      ep('cluster1', '127.208.1.4'),
      ep('cluster2', 'fd00:208::2'),
      ep('cluster2', 'fd00:208::3', 'web-0'),
    ],
  },
  // Answers that fit in 512 bytes only without their additional records.
  'default/wide': {
    type: 'Headless',
    ips: [],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    endpoints: [1, 2, 3].map((i) =>
      ep('cluster1', `127.208.4.${String(i)}`, `a-rather-long-hostname-00000${String(i)}`),
    ),
  },
  'default/no-ready': { type: 'Headless', ips: [], ports: [], endpoints: [] },
  'default/pending': {
    type: 'ClusterSetIP',
    ips: [],
    ports: [{ name: 'http', port: 80, protocol: 'TCP' }],
    endpoints: [],
  },
  // Clusters that disagree on a port: each endpoint is listed only with what it exposes.
  'default/split': {
    type: 'Headless',
    ips: [],
    ports: [{ name: 'tcp', port: 42, protocol: 'TCP' }],
    endpoints: [
      ep('cluster1', '127.208.1.10'),
      ep('cluster2', '127.208.2.10', undefined, [{ name: 'tcp', port: 4242, protocol: 'TCP' }]),
      ep('cluster3', '127.208.3.10', undefined, [{ name: 'other', port: 42, protocol: 'TCP' }]),
    ],
  },
};

function fakeClusterSet(synced = true): ClusterSetRecordSource & { synced: boolean } {
  return {
    serviceImport: (ns, name) => IMPORTS[`${ns}/${name}`],
    hasNamespace: (ns) => ns === 'default' || ns === 'empty-ns',
    synced,
  };
}

const SOURCE: DnsRecordSource = {
  // cluster.local's own `hello`, to tell the zones apart.
  service: (ns, name) =>
    ns === 'default' && name === 'hello'
      ? {
          clusterIP: '127.208.64.10',
          ports: [{ name: 'tcp', port: 42, protocol: 'TCP' }],
          endpoints: [],
        }
      : undefined,
  clusterset: fakeClusterSet(),
};

function rcode(r: DecodedPacket): number {
  return (r.flags ?? 0) & 0xf;
}

/** Answers as zone-file lines, the easiest form to compare exactly. */
function lines(answers: readonly Answer[] | undefined): string[] {
  return (answers ?? [])
    .filter((a) => a.type !== 'OPT')
    .map((a) => {
      const head = `${a.name} ${String(a.ttl)} ${a.type}`;
      switch (a.type) {
        case 'A':
        case 'AAAA':
          return `${head} ${a.data}`;
        case 'SRV':
          return `${head} ${String(a.data.priority)} ${String(a.data.weight)} ${String(a.data.port)} ${a.data.target}`;
        case 'SOA':
          return `${head} ${a.data.mname} ${a.data.rname} ${String(a.data.refresh)} ${String(a.data.retry)} ${String(a.data.expire)} ${String(a.data.minimum)}`;
        case 'TXT':
          return `${head} ${(Array.isArray(a.data) ? a.data : [a.data]).map(String).join(' ')}`;
        default:
          return head;
      }
    });
}

const SOA = `${ZONE} 5 SOA ns.dns.${ZONE} hostmaster.${ZONE} 7200 1800 86400 5`;

/** With EDNS (4096 bytes, as dig asks) unless `edns` is false. */
async function ask(
  server: RunningDnsServer,
  name: string,
  type: RecordType,
  edns = true,
): Promise<DecodedPacket> {
  const sock = createSocket('udp4');
  try {
    const wire = await new Promise<Buffer>((resolve, reject) => {
      const timer = setTimeout(() => {
        reject(new Error(`no answer for ${name} ${type}`));
      }, 2000);
      sock.on('error', reject);
      sock.on('message', (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      sock.send(
        dnsPacket.encode({
          type: 'query',
          id: 208,
          flags: dnsPacket.RECURSION_DESIRED,
          questions: [{ name, type, class: 'IN' }],
          additionals: edns
            ? [
                {
                  name: '.',
                  type: 'OPT',
                  udpPayloadSize: 4096,
                  extendedRcode: 0,
                  ednsVersion: 0,
                  flags: 0,
                  flag_do: false,
                  options: [],
                },
              ]
            : [],
        }),
        server.port,
        server.host,
      );
    });
    return dnsPacket.decode(wire);
  } finally {
    sock.close();
  }
}

/** The answer, authority and additional sections, and the rcode, of one query. */
async function sections(
  server: RunningDnsServer,
  name: string,
  type: RecordType,
  edns = true,
): Promise<Sections> {
  const r = await ask(server, name, type, edns);
  const flags = r.flags ?? 0;
  return {
    rcode: rcode(r),
    aa: (flags & dnsPacket.AUTHORITATIVE_ANSWER) !== 0,
    tc: (flags & dnsPacket.TRUNCATED_RESPONSE) !== 0,
    answer: lines(r.answers),
    authority: lines(r.authorities),
    extra: lines(r.additionals),
  };
}

interface Sections {
  readonly rcode: number;
  readonly aa: boolean;
  readonly tc: boolean;
  readonly answer: readonly string[];
  readonly authority: readonly string[];
  readonly extra: readonly string[];
}

const NXDOMAIN: Sections = {
  rcode: RCODE.NXDOMAIN,
  aa: true,
  tc: false,
  answer: [],
  authority: [SOA],
  extra: [],
};
const NODATA: Sections = { ...NXDOMAIN, rcode: RCODE.NOERROR };

function positive(answer: readonly string[], extra: readonly string[] = []): Sections {
  return { rcode: RCODE.NOERROR, aa: true, tc: false, answer, authority: [], extra };
}

void describe('clusterset.local zone', () => {
  let server: RunningDnsServer;
  before(async () => {
    server = await startDnsServer({ host: HOST, port: 0, source: SOURCE });
  });
  after(async () => {
    await server.close();
  });

  const q = (name: string, type: RecordType): Promise<Sections> => sections(server, name, type);

  it('answers A with the ClusterSetIP, and NODATA for the family it lacks', async () => {
    const name = `hello.default.svc.${ZONE}`;
    assert.deepEqual(await q(name, 'A'), positive([`${name} 5 A 127.208.128.10`]));
    assert.deepEqual(await q(name, 'AAAA'), NODATA);
    assert.deepEqual(await q(name, 'TXT'), NODATA);
  });

  it('answers A and AAAA for a dual-stack ClusterSetIP', async () => {
    const name = `dual.default.svc.${ZONE}`;
    assert.deepEqual(await q(name, 'A'), positive([`${name} 5 A 127.208.128.11`]));
    assert.deepEqual(await q(name, 'AAAA'), positive([`${name} 5 AAAA fd00:208::11`]));
    // One candidate per address: weight 100/2, and one record for the one (target, port).
    assert.deepEqual(
      await q(name, 'SRV'),
      positive(
        [`${name} 5 SRV 0 50 80 ${name}`],
        [`${name} 5 A 127.208.128.11`, `${name} 5 AAAA fd00:208::11`],
      ),
    );
  });

  it('keeps cluster.local apart: the same name there is the local Service', async () => {
    assert.deepEqual(
      await q('hello.default.svc.cluster.local', 'A'),
      positive(['hello.default.svc.cluster.local 5 A 127.208.64.10']),
    );
    assert.equal((await q('example.com', 'A')).rcode, RCODE.REFUSED);
  });

  it('answers SRV for each named port, and for the bare name de-duplicated by (target, port)', async () => {
    const name = `hello.default.svc.${ZONE}`;
    assert.deepEqual(
      await q(`_tcp._tcp.${name}`, 'SRV'),
      positive([`_tcp._tcp.${name} 5 SRV 0 100 42 ${name}`], [`${name} 5 A 127.208.128.10`]),
    );
    assert.deepEqual(
      await q(`_UDP._Udp.${name}`, 'SRV'),
      positive([`_UDP._Udp.${name} 5 SRV 0 100 42 ${name}`], [`${name} 5 A 127.208.128.10`]),
    );
    // tcp/42 and udp/42: one record, as the conformance suite expects (DNS-C2).
    assert.deepEqual(
      await q(name, 'SRV'),
      positive([`${name} 5 SRV 0 50 42 ${name}`], [`${name} 5 A 127.208.128.10`]),
    );
    assert.deepEqual(await q(`_tcp._tcp.${name}`, 'A'), NODATA);
    assert.deepEqual(await q(`_http._tcp.${name}`, 'SRV'), NXDOMAIN);
    assert.deepEqual(await q(`_tcp._udp.${name}`, 'SRV'), NXDOMAIN);
  });

  it('answers a headless import with the ready endpoints of every cluster', async () => {
    const name = `hdls.default.svc.${ZONE}`;
    assert.deepEqual(
      await q(name, 'A'),
      positive(
        ['127.208.1.1', '127.208.1.2', '127.208.1.3', '127.208.1.4'].map(
          (ip) => `${name} 5 A ${ip}`,
        ),
      ),
    );
    assert.deepEqual(
      await q(name, 'AAAA'),
      positive([`${name} 5 AAAA fd00:208::2`, `${name} 5 AAAA fd00:208::3`]),
    );
  });

  it('answers <hostname>.<clusterid> names, hostnames made from IPs included', async () => {
    const base = `hdls.default.svc.${ZONE}`;
    assert.deepEqual(
      await q(`dup-name.cluster1.${base}`, 'A'),
      positive([
        `dup-name.cluster1.${base} 5 A 127.208.1.2`,
        `dup-name.cluster1.${base} 5 A 127.208.1.3`,
      ]),
    );
    assert.deepEqual(
      await q(`web-0.cluster2.${base}`, 'AAAA'),
      positive([`web-0.cluster2.${base} 5 AAAA fd00:208::3`]),
    );
    assert.deepEqual(await q(`web-0.cluster2.${base}`, 'A'), NODATA);
    assert.deepEqual(
      await q(`127-208-1-4.cluster1.${base}`, 'A'),
      positive([`127-208-1-4.cluster1.${base} 5 A 127.208.1.4`]),
    );
    assert.deepEqual(
      await q(`fd00-208--2.cluster2.${base}`, 'AAAA'),
      positive([`fd00-208--2.cluster2.${base} 5 AAAA fd00:208::2`]),
    );
    // Names are case-insensitive; the answer echoes the question's case (0x20).
    assert.deepEqual(
      await q(`WEB-0.Cluster1.${base.toUpperCase()}`, 'A'),
      positive([`WEB-0.Cluster1.${base.toUpperCase()} 5 A 127.208.1.1`]),
    );
    // The right hostname in the wrong cluster does not exist.
    assert.deepEqual(await q(`web-0.cluster3.${base}`, 'A'), NXDOMAIN);
    assert.deepEqual(await q(`127-208-1-4.cluster2.${base}`, 'A'), NXDOMAIN);
  });

  it('answers NXDOMAIN for <clusterid>.<svc>: the specification forbids per-cluster names', async () => {
    for (const name of [
      `cluster1.hdls.default.svc.${ZONE}`,
      `cluster1.hello.default.svc.${ZONE}`,
      `cluster2.hello.default.svc.${ZONE}`,
    ]) {
      for (const type of ['A', 'AAAA', 'SRV'] as const) {
        assert.deepEqual(await q(name, type), NXDOMAIN, `${name} ${type}`);
      }
    }
    // A ClusterSetIP import has no per-endpoint names either.
    assert.deepEqual(await q(`hello-0.cluster1.hello.default.svc.${ZONE}`, 'A'), NXDOMAIN);
    // Nor is anything deeper a name.
    assert.deepEqual(await q(`a.web-0.cluster1.hdls.default.svc.${ZONE}`, 'A'), NXDOMAIN);
  });

  it('answers headless SRV per endpoint and port, union over clusters, weight shared', async () => {
    const base = `hdls.default.svc.${ZONE}`;
    const name = `_http._tcp.${base}`;
    // Six candidates (weight 100/6 = 16); dup-name's two addresses share one target.
    const targets = [
      `web-0.cluster1.${base}`,
      `dup-name.cluster1.${base}`,
      `127-208-1-4.cluster1.${base}`,
      `fd00-208--2.cluster2.${base}`,
      `web-0.cluster2.${base}`,
    ];
    assert.deepEqual(
      await q(name, 'SRV'),
      positive(
        targets.map((t) => `${name} 5 SRV 0 16 80 ${t}`),
        [
          `web-0.cluster1.${base} 5 A 127.208.1.1`,
          `dup-name.cluster1.${base} 5 A 127.208.1.2`,
          `dup-name.cluster1.${base} 5 A 127.208.1.3`,
          `127-208-1-4.cluster1.${base} 5 A 127.208.1.4`,
          `fd00-208--2.cluster2.${base} 5 AAAA fd00:208::2`,
          `web-0.cluster2.${base} 5 AAAA fd00:208::3`,
        ],
      ),
    );
    // Without EDNS even the answer is over 512 bytes: truncated, the client retries on TCP.
    assert.deepEqual(await sections(server, name, 'SRV', false), {
      ...positive([]),
      tc: true,
    });
    // The bare name: every port, the unnamed one too (12 candidates: weight 8).
    const bare = await q(base, 'SRV');
    assert.equal(bare.answer.length, 10);
    assert.deepEqual(
      bare.answer.filter((l) => l.includes(' 9000 ')),
      targets.map((t) => `${base} 5 SRV 0 8 9000 ${t}`),
    );
  });

  it('leaves the additional records out rather than truncate the answer', async () => {
    const base = `wide.default.svc.${ZONE}`;
    const name = `_http._tcp.${base}`;
    const answer = [1, 2, 3].map(
      (i) => `${name} 5 SRV 0 33 80 a-rather-long-hostname-00000${String(i)}.cluster1.${base}`,
    );
    assert.equal((await q(name, 'SRV')).extra.length, 3);
    assert.deepEqual(await sections(server, name, 'SRV', false), positive(answer));
  });

  it('sends SRV to each cluster on the port that cluster exposes, and nowhere else', async () => {
    const base = `split.default.svc.${ZONE}`;
    assert.deepEqual((await q(`_tcp._tcp.${base}`, 'SRV')).answer, [
      `_tcp._tcp.${base} 5 SRV 0 50 42 127-208-1-10.cluster1.${base}`,
      `_tcp._tcp.${base} 5 SRV 0 50 4242 127-208-2-10.cluster2.${base}`,
    ]);
  });

  it('answers NXDOMAIN for what is not imported, and for imports with nothing to answer', async () => {
    for (const name of [
      `nothing.default.svc.${ZONE}`,
      `hello.other-ns.svc.${ZONE}`,
      `no-ready.default.svc.${ZONE}`,
      `pending.default.svc.${ZONE}`,
      `_http._tcp.pending.default.svc.${ZONE}`,
      `hello.default.pod.${ZONE}`,
      `hello.default.svc.cluster1.${ZONE}`,
      `other-ns.svc.${ZONE}`,
    ]) {
      assert.deepEqual(await q(name, 'A'), NXDOMAIN, name);
    }
  });

  it('answers NODATA for the apex, svc and existing namespaces, and SOA at the apex', async () => {
    for (const name of [ZONE, `svc.${ZONE}`, `default.svc.${ZONE}`, `empty-ns.svc.${ZONE}`]) {
      assert.deepEqual(await q(name, 'A'), NODATA, name);
    }
    assert.deepEqual(await q(`${ZONE}.`, 'SOA'), positive([SOA]));
  });

  it('publishes the schema version', async () => {
    const name = `dns-version.${ZONE}`;
    assert.deepEqual(await q(name, 'TXT'), positive([`${name} 28800 TXT ${DNS_SCHEMA_VERSION}`]));
    assert.equal(DNS_SCHEMA_VERSION, '1.0.0');
    assert.deepEqual(await q(name, 'A'), NODATA);
  });

  it('is not in the pod search path: short names stay in the cluster', async () => {
    assert.deepEqual(podSearchPath('default'), [
      'default.svc.cluster.local',
      'svc.cluster.local',
      'cluster.local',
    ]);
    const opts = { server: server.address, search: podSearchPath('default') };
    assert.deepEqual(await resolveA('hello', opts), ['127.208.64.10']);
    assert.deepEqual(await resolveA(`hello.default.svc.${ZONE}`, opts), ['127.208.128.10']);
    await assert.rejects(resolveA('dual', opts), (err: unknown) => isClusterMeshError(err));
  });
});

void describe('clusterset.local zone options', () => {
  it('answers SERVFAIL, not NXDOMAIN, for names not found before the source has synced', async () => {
    const clusterset = fakeClusterSet(false);
    const server = await startDnsServer({
      host: '127.208.0.2',
      port: 0,
      source: { service: () => undefined, clusterset },
    });
    try {
      const unknown = await ask(server, `nothing.default.svc.${ZONE}`, 'A');
      assert.equal(rcode(unknown), RCODE.SERVFAIL);
      assert.equal(rcode(await ask(server, `hello.default.svc.${ZONE}`, 'A')), RCODE.NOERROR);
      // Not a matter of data: forbidden names are NXDOMAIN whatever the state.
      assert.equal(
        rcode(await ask(server, `cluster1.hello.default.svc.${ZONE}`, 'A')),
        RCODE.NXDOMAIN,
      );
      clusterset.synced = true;
      assert.equal(rcode(await ask(server, `nothing.default.svc.${ZONE}`, 'A')), RCODE.NXDOMAIN);
    } finally {
      await server.close();
    }
  });

  it('serves an empty zone for a source without imports, another zone name, or none', async () => {
    const bare = await startDnsServer({
      host: '127.208.0.3',
      port: 0,
      source: { service: () => undefined },
    });
    try {
      assert.equal(rcode(await ask(bare, `hello.default.svc.${ZONE}`, 'A')), RCODE.NXDOMAIN);
      assert.equal(rcode(await ask(bare, ZONE, 'SOA')), RCODE.NOERROR);
    } finally {
      await bare.close();
    }
    const renamed = await startDnsServer({
      host: '127.208.0.3',
      port: 0,
      source: SOURCE,
      clustersetDomain: 'Mesh.Example.',
    });
    try {
      const r = await ask(renamed, 'hello.default.svc.mesh.example', 'A');
      assert.deepEqual(lines(r.answers), ['hello.default.svc.mesh.example 5 A 127.208.128.10']);
      assert.equal(rcode(await ask(renamed, `hello.default.svc.${ZONE}`, 'A')), RCODE.REFUSED);
    } finally {
      await renamed.close();
    }
    const off = await startDnsServer({
      host: '127.208.0.3',
      port: 0,
      source: SOURCE,
      clustersetDomain: false,
    });
    try {
      assert.equal(rcode(await ask(off, `hello.default.svc.${ZONE}`, 'A')), RCODE.REFUSED);
    } finally {
      await off.close();
    }
    await assert.rejects(
      startDnsServer({
        host: '127.208.0.3',
        port: 0,
        source: SOURCE,
        clustersetDomain: 'cluster.local',
      }),
      /must differ/,
    );
  });
});

void describe('clusterset.local from the registry', () => {
  it('follows ServiceImports and MCS EndpointSlices, and keeps them out of cluster.local', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    const dns = createRegistryDnsSource(backend, silentLogger);
    const ac = new AbortController();
    const running = dns.run(ac.signal);
    const server = await startDnsServer({ host: '127.208.0.4', port: 0, source: dns.source });
    const q = (name: string, type: RecordType): Promise<Sections> => sections(server, name, type);
    try {
      await eventually(() => {
        assert.equal(dns.synced, true);
      });
      await registry.apply([
        namespace('empty-ns'),
        localService('hello', '127.208.64.20'),
        localSlice('hello-abcde', 'hello', ['127.208.1.50']),
        serviceImport('hello', 'ClusterSetIP', ['127.208.128.20']),
        serviceImport('db', 'Headless', []),
        mcsSlice('db-cluster1', 'db', 'cluster1', [
          { addresses: ['127.208.1.60'], hostname: 'db-0', conditions: { ready: true } },
          { addresses: ['127.208.1.61'], hostname: 'db-1', conditions: { ready: false } },
        ]),
        mcsSlice('db-cluster2', 'db', 'cluster2', [
          { addresses: ['127.208.2.60'], hostname: 'db-0' },
        ]),
        // Labelled with the exported Service's own name: it must not reach cluster.local.
        mcsSlice('hello-cluster2', 'hello', 'cluster2', [{ addresses: ['127.208.2.50'] }], 'hello'),
      ]);
      const hello = `hello.default.svc.${ZONE}`;
      const db = `db.default.svc.${ZONE}`;
      await eventually(async () => {
        assert.deepEqual(await q(hello, 'A'), positive([`${hello} 5 A 127.208.128.20`]));
        assert.deepEqual(
          await q(db, 'A'),
          positive([`${db} 5 A 127.208.1.60`, `${db} 5 A 127.208.2.60`]),
        );
      }, 5000);
      assert.deepEqual(
        await q(`_tcp._tcp.${hello}`, 'SRV'),
        positive([`_tcp._tcp.${hello} 5 SRV 0 100 42 ${hello}`], [`${hello} 5 A 127.208.128.20`]),
      );
      assert.deepEqual(
        await q(`_tcp._tcp.${db}`, 'SRV'),
        positive(
          [
            `_tcp._tcp.${db} 5 SRV 0 50 5432 db-0.cluster1.${db}`,
            `_tcp._tcp.${db} 5 SRV 0 50 5432 db-0.cluster2.${db}`,
          ],
          [`db-0.cluster1.${db} 5 A 127.208.1.60`, `db-0.cluster2.${db} 5 A 127.208.2.60`],
        ),
      );
      assert.deepEqual(
        await q(`db-0.cluster2.${db}`, 'A'),
        positive([`db-0.cluster2.${db} 5 A 127.208.2.60`]),
      );
      assert.deepEqual(await q(`db-1.cluster1.${db}`, 'A'), NXDOMAIN);
      assert.deepEqual(await q(`cluster1.${db}`, 'A'), NXDOMAIN);
      assert.deepEqual(await q(`empty-ns.svc.${ZONE}`, 'A'), NODATA);
      assert.deepEqual(await q(`default.svc.${ZONE}`, 'A'), NODATA);
      assert.deepEqual(await q(`elsewhere.svc.${ZONE}`, 'A'), NXDOMAIN);
      assert.deepEqual(
        await q('hello.default.svc.cluster.local', 'A'),
        positive(['hello.default.svc.cluster.local 5 A 127.208.64.20']),
      );

      // The last ready endpoint goes: the name goes with it.
      await registry.apply([
        mcsSlice('db-cluster1', 'db', 'cluster1', [
          { addresses: ['127.208.1.60'], hostname: 'db-0', conditions: { ready: false } },
        ]),
      ]);
      await registry.delete('EndpointSlice', 'default', 'db-cluster2');
      await eventually(async () => {
        assert.deepEqual(await q(db, 'A'), NXDOMAIN);
      }, 5000);

      await registry.delete('ServiceImport', 'default', 'hello');
      await eventually(async () => {
        assert.deepEqual(await q(hello, 'A'), NXDOMAIN);
      }, 5000);
      // The local Service is untouched by the import's removal.
      assert.deepEqual(
        await q('hello.default.svc.cluster.local', 'A'),
        positive(['hello.default.svc.cluster.local 5 A 127.208.64.20']),
      );
    } finally {
      await server.close();
      ac.abort();
      await running;
      await backend.close();
    }
  });
});

void describe('clusterset.local with dig', () => {
  const run = promisify(execFile);
  let server: RunningDnsServer;
  before(async () => {
    server = await startDnsServer({ host: HOST, port: 0, source: SOURCE });
  });
  after(async () => {
    await server.close();
  });
  /** dig's output, with runs of blanks as one space (its column widths vary). */
  const dig = async (...args: string[]): Promise<string> =>
    (
      await run('dig', [`@${HOST}`, '-p', String(server.port), '+time=2', '+tries=1', ...args])
    ).stdout.replace(/[ \t]+/g, ' ');

  it('gets A, SRV, per-endpoint, NXDOMAIN and TXT answers', async () => {
    assert.equal(
      await dig('+noall', '+answer', `hello.default.svc.${ZONE}`),
      `hello.default.svc.${ZONE}. 5 IN A 127.208.128.10\n`,
    );
    assert.equal(
      await dig('+short', 'SRV', `_tcp._tcp.hello.default.svc.${ZONE}`),
      `0 100 42 hello.default.svc.${ZONE}.\n`,
    );
    assert.equal(
      await dig('+short', 'AAAA', `web-0.cluster2.hdls.default.svc.${ZONE}`),
      'fd00:208::3\n',
    );
    assert.equal(await dig('+short', 'TXT', `dns-version.${ZONE}`), '"1.0.0"\n');
    const nx = await dig('+noall', '+comments', '+authority', `cluster1.hdls.default.svc.${ZONE}`);
    assert.match(nx, /status: NXDOMAIN/);
    assert.match(nx, /flags: qr aa rd;/);
    assert.match(
      nx,
      new RegExp(
        `^${ZONE}\\.\\s+5\\s+IN\\s+SOA\\s+ns\\.dns\\.${ZONE}\\. hostmaster\\.${ZONE}\\. \\d+ 7200 1800 86400 5$`,
        'm',
      ),
    );
    // Over TCP too, with the headless SRV's additional records.
    const tcp = await dig(
      '+tcp',
      '+noall',
      '+answer',
      '+additional',
      'SRV',
      `_http._tcp.hdls.default.svc.${ZONE}`,
    );
    assert.equal(tcp.trim().split('\n').length, 11);
  });
});

function namespace(name: string): RegistryObject {
  return { apiVersion: 'v1', kind: 'Namespace', metadata: { name } };
}

function localService(name: string, clusterIP: string): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { clusterIP, ports: [{ name: 'tcp', port: 42 }], selector: { app: name } },
  };
}

function localSlice(name: string, serviceName: string, ips: string[]): RegistryObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: { name, namespace: 'default', labels: { 'kubernetes.io/service-name': serviceName } },
    addressType: 'IPv4',
    endpoints: ips.map((ip) => ({ addresses: [ip] })),
    ports: [{ name: 'tcp', port: 42 }],
  };
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
    spec: {
      type,
      ips,
      ports: [{ name: 'tcp', protocol: 'TCP', port: type === 'Headless' ? 5432 : 42 }],
    },
    status: { clusters: [{ cluster: 'cluster1' }, { cluster: 'cluster2' }] },
  };
}

/** `serviceName` for `kubernetes.io/service-name`, which the registry requires on every slice. */
function mcsSlice(
  name: string,
  importName: string,
  cluster: string,
  endpoints: unknown[],
  serviceName = `derived-${importName}`,
): RegistryObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: 'default',
      labels: {
        'kubernetes.io/service-name': serviceName,
        'multicluster.kubernetes.io/service-name': importName,
        'multicluster.kubernetes.io/source-cluster': cluster,
        'endpointslice.kubernetes.io/managed-by': 'clustermesh-operator',
      },
    },
    addressType: 'IPv4',
    endpoints,
    ports: [{ name: 'tcp', port: 5432 }],
  };
}
