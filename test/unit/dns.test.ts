import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { createSocket, type Socket as UdpSocket } from 'node:dgram';
import { existsSync } from 'node:fs';
import { connect } from 'node:net';
import { after, before, describe, it } from 'node:test';
import { promisify } from 'node:util';
import dnsPacket from 'dns-packet';
import type { Answer, DecodedPacket, RecordType } from 'dns-packet';
import { createRegistryDnsSource } from '../../src/dns/registry-source.js';
import { podSearchPath, resolveA } from '../../src/dns/client.js';
import { startDnsServer, type RunningDnsServer } from '../../src/dns/server.js';
import type { DnsRecordSource, ServiceRecord } from '../../src/dns/records.js';
import { FrameReader, frame } from '../../src/dns/framing.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { ClusterMeshError, ErrorCode, isClusterMeshError } from '../../src/lib/errors.js';
import { silentLogger } from '../../src/lib/logger.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { eventually } from '../support/eventually.js';

// Only 127.201.x.x: other test files use other loopback ranges concurrently.
const HOST = '127.201.0.1';

const RCODE = { NOERROR: 0, NXDOMAIN: 3, REFUSED: 5 } as const;

function staticSource(records: Record<string, ServiceRecord>): DnsRecordSource {
  return { service: (ns, name) => records[`${ns}/${name}`] };
}

const SOURCE = staticSource({
  'default/rebel-base': {
    clusterIP: '127.201.128.20',
    ports: [
      { name: 'http', port: 80, protocol: 'TCP' },
      { name: 'dns', port: 53, protocol: 'UDP' },
    ],
    endpoints: [{ ip: '127.201.1.5' }],
  },
  'default/x-wing': {
    clusterIP: 'None',
    ports: [{ name: 'http', port: 8080, protocol: 'TCP' }],
    endpoints: [{ ip: '127.201.1.6', hostname: 'x-wing-0' }, { ip: '127.201.2.7' }],
  },
  'default/fleet': {
    ports: [{ port: 80, protocol: 'TCP' }],
    endpoints: Array.from({ length: 60 }, (_, i) => ({ ip: `127.201.3.${i + 1}` })),
  },
});

function rcode(r: DecodedPacket): number {
  return (r.flags ?? 0) & 0xf;
}

function data(answers: readonly Answer[] | undefined, type: RecordType): unknown[] {
  return (answers ?? []).filter((a) => a.type === type).map((a) => ('data' in a ? a.data : null));
}

/** Sends raw bytes over UDP and waits for one datagram back (or `undefined` after `ms`). */
async function udpExchange(
  server: RunningDnsServer,
  wire: Buffer,
  ms = 2000,
): Promise<Buffer | undefined> {
  const sock: UdpSocket = createSocket('udp4');
  try {
    return await new Promise<Buffer | undefined>((resolve, reject) => {
      const timer = setTimeout(() => {
        resolve(undefined);
      }, ms);
      sock.on('error', reject);
      sock.on('message', (msg) => {
        clearTimeout(timer);
        resolve(msg);
      });
      sock.send(wire, server.port, server.host);
    });
  } finally {
    sock.close();
  }
}

function encodeQuery(name: string, type: RecordType, id = 4242): Buffer {
  return dnsPacket.encode({
    type: 'query',
    id,
    flags: dnsPacket.RECURSION_DESIRED,
    questions: [{ name, type, class: 'IN' }],
  });
}

async function ask(
  server: RunningDnsServer,
  name: string,
  type: RecordType,
): Promise<DecodedPacket> {
  const msg = await udpExchange(server, encodeQuery(name, type));
  assert.ok(msg, `no answer for ${name} ${type}`);
  return dnsPacket.decode(msg);
}

/** Several queries on one TCP connection, sent back to back; the responses in order. */
async function askTcp(
  server: RunningDnsServer,
  wires: readonly Buffer[],
): Promise<DecodedPacket[]> {
  const conn = connect({ host: server.host, port: server.port });
  const reader = new FrameReader();
  const out: DecodedPacket[] = [];
  try {
    return await new Promise<DecodedPacket[]>((resolve, reject) => {
      conn.on('error', reject);
      conn.on('data', (chunk: Buffer) => {
        for (const msg of reader.push(chunk)) out.push(dnsPacket.decode(msg));
        if (out.length === wires.length) resolve(out);
      });
      conn.write(Buffer.concat(wires.map(frame)));
    });
  } finally {
    conn.destroy();
  }
}

void describe('dns server', () => {
  let server: RunningDnsServer;
  before(async () => {
    server = await startDnsServer({ host: HOST, port: 0, source: SOURCE });
  });
  after(async () => {
    await server.close();
  });

  it('answers A for a service with its ClusterIP, authoritatively, echoing RD', async () => {
    const r = await ask(server, 'rebel-base.default.svc.cluster.local', 'A');
    assert.equal(rcode(r), RCODE.NOERROR);
    assert.equal(r.id, 4242);
    assert.equal(r.flag_qr, true);
    assert.equal(r.flag_aa, true);
    assert.equal(r.flag_rd, true);
    assert.equal(r.flag_ra, false);
    assert.deepEqual(data(r.answers, 'A'), ['127.201.128.20']);
    assert.equal(r.answers?.[0]?.type === 'A' ? r.answers[0].ttl : -1, 5);
    assert.equal(server.address, `${HOST}:${server.port}`);
  });

  it('answers A for a headless service with every endpoint IP', async () => {
    const r = await ask(server, 'x-wing.default.svc.cluster.local', 'A');
    assert.deepEqual(data(r.answers, 'A'), ['127.201.1.6', '127.201.2.7']);
  });

  it('answers A for a headless endpoint by hostname and by dashed IP', async () => {
    const byName = await ask(server, 'x-wing-0.x-wing.default.svc.cluster.local', 'A');
    assert.deepEqual(data(byName.answers, 'A'), ['127.201.1.6']);
    const byIP = await ask(server, '127-201-2-7.x-wing.default.svc.cluster.local', 'A');
    assert.deepEqual(data(byIP.answers, 'A'), ['127.201.2.7']);
    const other = await ask(server, 'nope.x-wing.default.svc.cluster.local', 'A');
    assert.equal(rcode(other), RCODE.NXDOMAIN);
  });

  it('answers SRV for a named port with the target address as additional record', async () => {
    const r = await ask(server, '_http._tcp.rebel-base.default.svc.cluster.local', 'SRV');
    assert.equal(rcode(r), RCODE.NOERROR);
    assert.deepEqual(data(r.answers, 'SRV'), [
      { priority: 0, weight: 100, port: 80, target: 'rebel-base.default.svc.cluster.local' },
    ]);
    assert.deepEqual(
      (r.additionals ?? []).map((a) => [a.name, a.type, 'data' in a ? a.data : null]),
      [['rebel-base.default.svc.cluster.local', 'A', '127.201.128.20']],
    );
    const udp = await ask(server, '_dns._udp.rebel-base.default.svc.cluster.local', 'SRV');
    assert.deepEqual(
      data(udp.answers, 'SRV').map((d) => (d as { port: number }).port),
      [53],
    );
    const wrongProto = await ask(server, '_http._udp.rebel-base.default.svc.cluster.local', 'SRV');
    assert.equal(rcode(wrongProto), RCODE.NXDOMAIN);
  });

  it('answers SRV for the service name (one per port) and per endpoint when headless', async () => {
    const r = await ask(server, 'rebel-base.default.svc.cluster.local', 'SRV');
    assert.deepEqual(
      data(r.answers, 'SRV').map((d) => (d as { port: number }).port),
      [80, 53],
    );
    const h = await ask(server, '_http._tcp.x-wing.default.svc.cluster.local', 'SRV');
    assert.deepEqual(
      data(h.answers, 'SRV').map((d) => (d as { target: string }).target),
      ['x-wing-0.x-wing.default.svc.cluster.local', '127-201-2-7.x-wing.default.svc.cluster.local'],
    );
    assert.deepEqual(
      (h.additionals ?? []).map((a) => [a.name, 'data' in a ? a.data : null]),
      [
        ['x-wing-0.x-wing.default.svc.cluster.local', '127.201.1.6'],
        ['127-201-2-7.x-wing.default.svc.cluster.local', '127.201.2.7'],
      ],
    );
  });

  it('answers pod records', async () => {
    const r = await ask(server, '127-201-1-5.default.pod.cluster.local', 'A');
    assert.deepEqual(data(r.answers, 'A'), ['127.201.1.5']);
    const bad = await ask(server, 'not-an-ip.default.pod.cluster.local', 'A');
    assert.equal(rcode(bad), RCODE.NXDOMAIN);
  });

  it('answers NXDOMAIN with the SOA for unknown names in the domain', async () => {
    const before = server.stats.nxdomain;
    const r = await ask(server, 'death-star.default.svc.cluster.local', 'A');
    assert.equal(rcode(r), RCODE.NXDOMAIN);
    assert.equal(r.flag_aa, true);
    assert.deepEqual(r.answers, []);
    assert.deepEqual(
      (r.authorities ?? []).map((a) => [a.name, a.type]),
      [['cluster.local', 'SOA']],
    );
    assert.equal(server.stats.nxdomain, before + 1);
    assert.equal(rcode(await ask(server, 'foo.bar.cluster.local', 'A')), RCODE.NXDOMAIN);
  });

  it('refuses names outside the domain', async () => {
    const r = await ask(server, 'example.com', 'A');
    assert.equal(rcode(r), RCODE.REFUSED);
    assert.deepEqual(r.answers, []);
    assert.equal(rcode(await ask(server, 'evilcluster.local', 'A')), RCODE.REFUSED);
  });

  it('answers NODATA (NOERROR, no answers, SOA) for AAAA of an existing name', async () => {
    const r = await ask(server, 'rebel-base.default.svc.cluster.local', 'AAAA');
    assert.equal(rcode(r), RCODE.NOERROR);
    assert.deepEqual(r.answers, []);
    assert.deepEqual(
      (r.authorities ?? []).map((a) => a.type),
      ['SOA'],
    );
    const ent = await ask(server, 'default.svc.cluster.local', 'A');
    assert.equal(rcode(ent), RCODE.NOERROR);
  });

  it('matches names case-insensitively, with or without the trailing dot', async () => {
    const r = await ask(server, 'Rebel-Base.DEFAULT.svc.Cluster.Local.', 'A');
    assert.deepEqual(data(r.answers, 'A'), ['127.201.128.20']);
    // Resolvers using 0x20 randomisation compare the echoed case.
    assert.equal(r.answers?.[0]?.name, 'Rebel-Base.DEFAULT.svc.Cluster.Local');
  });

  it('answers several queries on one TCP connection', async () => {
    const [a, b] = await askTcp(server, [
      encodeQuery('rebel-base.default.svc.cluster.local', 'A', 1),
      encodeQuery('x-wing.default.svc.cluster.local', 'A', 2),
    ]);
    assert.equal(a?.id, 1);
    assert.deepEqual(data(a.answers, 'A'), ['127.201.128.20']);
    assert.equal(b?.id, 2);
    assert.deepEqual(data(b.answers, 'A'), ['127.201.1.6', '127.201.2.7']);
  });

  it('truncates UDP answers above 512 bytes and serves them whole over TCP', async () => {
    const r = await ask(server, 'fleet.default.svc.cluster.local', 'A');
    assert.equal(r.flag_tc, true);
    assert.deepEqual(r.answers, []);
    const [full] = await askTcp(server, [encodeQuery('fleet.default.svc.cluster.local', 'A')]);
    assert.equal(data(full?.answers, 'A').length, 60);
    assert.equal(full?.flag_tc, false);
  });

  it('drops garbage without crashing and keeps answering', async () => {
    const errors = server.stats.errors;
    for (const junk of [
      Buffer.from('hello, world'),
      Buffer.alloc(3),
      Buffer.from([0, 1, 0, 0, 0, 1, 0, 0, 0, 0, 0, 0, 0xc0, 0x0c]),
      Buffer.alloc(600, 0xff),
    ]) {
      assert.equal(await udpExchange(server, junk, 200), undefined);
    }
    assert.equal(server.stats.errors, errors + 4);
    // A query with no question gets FORMERR rather than silence.
    const noQuestion = await udpExchange(server, dnsPacket.encode({ type: 'query', id: 7 }));
    assert.ok(noQuestion, 'noQuestion');
    assert.equal(rcode(dnsPacket.decode(noQuestion)), 1);
    const r = await ask(server, 'rebel-base.default.svc.cluster.local', 'A');
    assert.deepEqual(data(r.answers, 'A'), ['127.201.128.20']);
  });

  it('closes idle TCP connections on close()', async () => {
    const other = await startDnsServer({ host: '127.201.0.2', port: 0, source: SOURCE });
    const conn = connect({ host: other.host, port: other.port });
    await new Promise<void>((resolve) => conn.once('connect', resolve));
    const closed = new Promise<void>((resolve) => conn.once('close', () => resolve()));
    conn.on('error', () => undefined);
    await other.close();
    await closed;
  });

  it('falls back to a free port when asked, and fails clearly otherwise', async () => {
    const squatter = createSocket('udp4');
    await new Promise<void>((resolve) => squatter.bind(0, '127.201.0.3', resolve));
    const taken = squatter.address().port;
    try {
      await assert.rejects(
        startDnsServer({ host: '127.201.0.3', port: taken, source: SOURCE }),
        (err: unknown) =>
          isClusterMeshError(err, ErrorCode.InvalidConfig) &&
          err.message === `cannot serve DNS on 127.201.0.3:${taken}: address already in use`,
      );
      const moved = await startDnsServer({
        host: '127.201.0.3',
        port: taken,
        source: SOURCE,
        fallbackToFreePort: true,
      });
      try {
        assert.notEqual(moved.port, taken);
        const r = await ask(moved, 'rebel-base.default.svc.cluster.local', 'A');
        assert.deepEqual(data(r.answers, 'A'), ['127.201.128.20']);
      } finally {
        await moved.close();
      }
    } finally {
      squatter.close();
    }
  });

  it('answers dig', { skip: !existsSync('/usr/bin/dig') && 'dig is not installed' }, async () => {
    const { stdout } = await promisify(execFile)('/usr/bin/dig', [
      `@${HOST}`,
      '-p',
      String(server.port),
      '+short',
      '+time=2',
      '+tries=1',
      'rebel-base.default.svc.cluster.local',
    ]);
    assert.equal(stdout.trim(), '127.201.128.20');
  });
});

void describe('dns client', () => {
  let server: RunningDnsServer;
  before(async () => {
    server = await startDnsServer({ host: HOST, port: 0, source: SOURCE });
  });
  after(async () => {
    await server.close();
  });

  it('builds the pod search path', () => {
    assert.deepEqual(podSearchPath('default'), [
      'default.svc.cluster.local',
      'svc.cluster.local',
      'cluster.local',
    ]);
    assert.deepEqual(podSearchPath('ns', 'mesh.local'), [
      'ns.svc.mesh.local',
      'svc.mesh.local',
      'mesh.local',
    ]);
  });

  it('resolves short names through the search path, and full names', async () => {
    const opts = { server: server.address, search: podSearchPath('default') };
    assert.deepEqual(await resolveA('rebel-base', opts), ['127.201.128.20']);
    assert.deepEqual(await resolveA('x-wing.default', opts), ['127.201.1.6', '127.201.2.7']);
    assert.deepEqual(await resolveA('rebel-base.default.svc.cluster.local.', opts), [
      '127.201.128.20',
    ]);
    // Without a search list only the full name works.
    await assert.rejects(resolveA('rebel-base', { server: server.address }), {
      code: ErrorCode.KeyNotFound,
    });
  });

  it('returns IP literals as they are', async () => {
    assert.deepEqual(await resolveA('127.201.9.9', { server: '127.201.255.254:1' }), [
      '127.201.9.9',
    ]);
  });

  it('rejects unknown names with ERR_KEY_NOT_FOUND', async () => {
    await assert.rejects(
      resolveA('death-star', { server: server.address, search: podSearchPath('default') }),
      (err: unknown) =>
        err instanceof ClusterMeshError &&
        err.code === ErrorCode.KeyNotFound &&
        err.message === 'could not resolve host: death-star',
    );
  });

  it('falls back to TCP when the UDP answer is truncated', async () => {
    const ips = await resolveA('fleet', {
      server: server.address,
      search: podSearchPath('default'),
    });
    assert.equal(ips.length, 60);
  });

  it('times out against a silent server (after one retry)', async () => {
    const silent = createSocket('udp4');
    let received = 0;
    silent.on('message', () => received++);
    await new Promise<void>((resolve) => silent.bind(0, '127.201.0.4', resolve));
    try {
      await assert.rejects(
        resolveA('rebel-base.default.svc.cluster.local.', {
          server: `127.201.0.4:${silent.address().port}`,
          timeoutMs: 100,
        }),
        (err: unknown) =>
          isClusterMeshError(err, ErrorCode.Timeout) && /timed out after 100ms/.test(err.message),
      );
      assert.equal(received, 2);
    } finally {
      silent.close();
    }
  });

  it('stops on abort', async () => {
    const silent = createSocket('udp4');
    await new Promise<void>((resolve) => silent.bind(0, '127.201.0.4', resolve));
    try {
      const ac = new AbortController();
      const pending = resolveA('a.b.c.d.e.f', {
        server: `127.201.0.4:${silent.address().port}`,
        signal: ac.signal,
      });
      ac.abort();
      await assert.rejects(pending, { code: ErrorCode.Aborted });
    } finally {
      silent.close();
    }
  });
});

void describe('dns registry source', () => {
  it('serves Services and their ready endpoints from the registry, following changes', async () => {
    const backend = new MemoryBackend(new MemoryStore());
    const registry = new Registry(backend);
    const dns = createRegistryDnsSource(backend, silentLogger);
    const ac = new AbortController();
    const running = dns.run(ac.signal);
    const server = await startDnsServer({ host: '127.201.0.5', port: 0, source: dns.source });
    try {
      await registry.apply([
        service('rebel-base', '127.201.128.30'),
        service('x-wing', 'None'),
        slice('x-wing-abc12', 'x-wing', [
          { addresses: ['127.201.1.10'], conditions: { ready: true }, hostname: 'x-wing-0' },
          { addresses: ['127.201.1.11'] },
          { addresses: ['127.201.1.12'], conditions: { ready: false } },
        ]),
      ]);
      await eventually(() => {
        assert.equal(dns.synced, true);
      });
      const opts = { server: server.address, search: podSearchPath('default') };
      await eventually(async () => {
        assert.deepEqual(await resolveA('rebel-base', opts), ['127.201.128.30']);
        assert.deepEqual(await resolveA('x-wing', opts), ['127.201.1.10', '127.201.1.11']);
      }, 5000);
      const srv = await ask(server, '_http._tcp.x-wing.default.svc.cluster.local', 'SRV');
      assert.deepEqual(
        data(srv.answers, 'SRV').map((d) => (d as { target: string }).target),
        [
          'x-wing-0.x-wing.default.svc.cluster.local',
          '127-201-1-11.x-wing.default.svc.cluster.local',
        ],
      );

      // A slice moved to another Service leaves the first one.
      await registry.apply([
        slice('x-wing-abc12', 'rebel-base', [{ addresses: ['127.201.1.13'] }]),
      ]);
      await eventually(async () => {
        const r = await ask(server, 'x-wing.default.svc.cluster.local', 'A');
        assert.equal(rcode(r), RCODE.NOERROR);
        assert.deepEqual(r.answers, []);
      }, 5000);

      await registry.delete('Service', 'default', 'rebel-base');
      await eventually(async () => {
        const r = await ask(server, 'rebel-base.default.svc.cluster.local', 'A');
        assert.equal(rcode(r), RCODE.NXDOMAIN);
      }, 5000);
    } finally {
      await server.close();
      ac.abort();
      await running;
      await backend.close();
    }
  });
});

function service(name: string, clusterIP: string): RegistryObject {
  return {
    apiVersion: 'v1',
    kind: 'Service',
    metadata: { name, namespace: 'default' },
    spec: { clusterIP, ports: [{ name: 'http', port: 80 }], selector: { app: name } },
  };
}

function slice(name: string, serviceName: string, endpoints: unknown[]): RegistryObject {
  return {
    apiVersion: 'discovery.k8s.io/v1',
    kind: 'EndpointSlice',
    metadata: {
      name,
      namespace: 'default',
      labels: { 'kubernetes.io/service-name': serviceName },
    },
    addressType: 'IPv4',
    endpoints,
    ports: [{ name: 'http', port: 8080 }],
  };
}
