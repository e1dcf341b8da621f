/**
 * The MCS-API operator in Kubernetes mode (`operator --k8s-kubeconfig-path`), a separate
 * process: it reads cluster2's ServiceExports, Services, EndpointSlices and Namespaces from
 * a Kubernetes API server (ours, over the registry in cluster2's real etcd, HTTPS with a
 * bearer token, reached through a TCP proxy the test can cut) and writes ServiceImports,
 * derived Services, MCS EndpointSlices and ServiceExport conditions back through it.
 * cluster1 (its own etcd and apiserver) exports another name remotely. Objects are made
 * with the real kubectl and checked with it. The watch is cut, the resourceVersion it
 * resumes from is compacted away (410 Gone), and the API server is stopped and restarted,
 * each while exports change: the operator converges every time, losing nothing, and its
 * status says when the API server does not answer. The writer itself re-reads and retries
 * on 409 Conflict and takes a 404 on delete as done.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import { Apiserver } from '../../src/apiserver/module.js';
import { freePort } from '../../src/etcd/index.js';
import { kubeconfigYaml } from '../../src/kubeapi/kubeconfig.js';
import { KubeApiServer } from '../../src/kubeapi/server.js';
import { loadKubeConfig } from '../../src/kubesource/kubeconfig.js';
import { kubeWriter } from '../../src/kubesource/writer.js';
import type { KvstoreConfig } from '../../src/kvstore/config.js';
import { EtcdBackend } from '../../src/kvstore/etcd.js';
import { silentLogger } from '../../src/lib/logger.js';
import { derivedServiceName } from '../../src/mcsapi/types.js';
import { Registry } from '../../src/registry/registry.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { kubectlIn } from '../support/cli.js';
import { startEtcd, type EtcdServer } from '../support/etcd.js';
import { eventually } from '../support/eventually.js';
import { DaemonProcess, getJson } from '../support/mesh.js';
import { TcpProxy } from '../support/tcp-proxy.js';
import { createCA, issueCert, loopbackServerCertOptions } from '../support/tls.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

interface Condition {
  readonly type: string;
  readonly status: string;
  readonly reason?: string;
}

interface KubeObject {
  readonly metadata: {
    readonly name: string;
    readonly uid?: string;
    readonly resourceVersion?: string;
    readonly labels?: Record<string, string>;
    readonly annotations?: Record<string, string>;
    readonly ownerReferences?: readonly { kind: string; uid: string }[];
  };
  readonly spec?: { ports?: readonly { port: number }[]; ips?: readonly string[] };
  readonly status?: {
    conditions?: readonly Condition[];
    clusters?: readonly { cluster: string }[];
  };
  readonly endpoints?: readonly { addresses: readonly string[] }[];
}

interface OperatorStatus {
  readonly ready: boolean;
  readonly kubernetes?: {
    readonly ok: boolean;
    readonly writes: { readonly ok: boolean; readonly lastError?: string; readonly writes: number };
  };
}

function kvstore(etcd: EtcdServer): KvstoreConfig {
  return {
    kind: 'etcd',
    etcd: { endpoints: etcd.endpoints },
    bootstrapQps: 0,
    qps: 0,
    maxInflight: 0,
    listLimit: 100,
  };
}

/** A Service with one backend, its EndpointSlice and its ServiceExport. */
/** A Service and its ServiceExport in cluster1's registry, as a remote contributes them. */
function remoteExport(name: string, clusterIP: string): RegistryObject[] {
  return [
    {
      apiVersion: 'v1',
      kind: 'Service',
      metadata: { name, namespace: 'default' },
      spec: { clusterIP, ports: [{ name: 'http', port: 80, protocol: 'TCP' }] },
    },
    {
      apiVersion: 'multicluster.x-k8s.io/v1alpha1',
      kind: 'ServiceExport',
      metadata: { name, namespace: 'default' },
    },
  ];
}

function exported(name: string, clusterIP: string, backend: string): string {
  return `apiVersion: v1
kind: Service
metadata:
  name: ${name}
  namespace: default
spec:
  clusterIP: ${clusterIP}
  ports:
  - name: http
    port: 80
    protocol: TCP
---
apiVersion: discovery.k8s.io/v1
kind: EndpointSlice
metadata:
  name: ${name}-1
  namespace: default
  labels:
    kubernetes.io/service-name: ${name}
addressType: IPv4
endpoints:
- addresses: ["${backend}"]
  conditions:
    ready: true
ports:
- name: http
  port: 80
  protocol: TCP
---
apiVersion: multicluster.x-k8s.io/v1alpha1
kind: ServiceExport
metadata:
  name: ${name}
  namespace: default
`;
}

describe(
  'MCS-API operator in Kubernetes mode (real etcds, our API server, kubectl)',
  {
    timeout: 240_000,
  },
  () => {
    let dir: string;
    let etcd1: EtcdServer;
    let etcd2: EtcdServer;
    let b1: EtcdBackend;
    let b2: EtcdBackend;
    let reg1: Registry;
    let reg2: Registry;
    let api1: Apiserver;
    let server: KubeApiServer;
    let startServer: () => Promise<void>;
    let proxy: TcpProxy;
    let kubectlConfig: string;
    let operatorConfig: string;
    let operator: DaemonProcess;
    let healthUrl: string;
    let meshDir: string;

    const kubectl = (args: readonly string[], input?: string): Promise<string> =>
      kubectlIn(dir, kubectlConfig, args, input);
    const getObject = async (resource: string, name: string): Promise<KubeObject | undefined> => {
      const out = await kubectl(['get', resource, name, '-o', 'json', '--ignore-not-found']);
      return out.trim() === '' ? undefined : (JSON.parse(out) as KubeObject);
    };
    const status = (): Promise<OperatorStatus> => getJson(`${healthUrl}/status`);
    const withLog = async (err: unknown): Promise<never> => {
      const log = await readFile(operator.logFile, 'utf8').catch(() => '');
      throw new Error(`${String(err)}\n${log.slice(-4000)}`);
    };
    /** Every object the operator writes for `name`, as kubectl shows them. */
    const imported = async (
      name: string,
      cluster: string,
    ): Promise<{ si: KubeObject; svc: KubeObject }> => {
      const si = await getObject('serviceimports.multicluster.x-k8s.io', name);
      assert.ok(si !== undefined, `ServiceImport ${name}`);
      assert.deepEqual(si.status?.clusters, [{ cluster }]);
      assert.deepEqual(
        si.spec?.ports?.map((p) => p.port),
        [80],
      );
      const svc = await getObject('service', derivedServiceName('default', name));
      assert.ok(svc !== undefined, `derived Service of ${name}`);
      assert.equal(svc.metadata.annotations?.['service.cilium.io/global'], 'true');
      assert.equal(svc.metadata.ownerReferences?.[0]?.uid, si.metadata.uid, 'owned by the import');
      return { si, svc };
    };

    before(async () => {
      dir = await mkdtemp(join(tmpdir(), 'operator-k8s-'));
      [etcd1, etcd2] = await Promise.all([
        startEtcd({ name: 'op-k8s-c1' }),
        startEtcd({ name: 'op-k8s-c2' }),
      ]);
      b1 = new EtcdBackend({ endpoints: etcd1.endpoints, callTimeoutMs: 5_000 });
      b2 = new EtcdBackend({ endpoints: etcd2.endpoints, callTimeoutMs: 5_000 });
      reg1 = new Registry(b1);
      reg2 = new Registry(b2);
      // cluster1 exports `remote-hello` (read by cluster2's operator from etcd1).
      await reg1.apply(remoteExport('remote-hello', '127.1.128.30'));
      api1 = new Apiserver({
        clusterName: 'cluster1',
        clusterId: 1,
        maxConnectedClusters: 255,
        kvstore: kvstore(etcd1),
        log: silentLogger,
      });
      await api1.start();
      meshDir = join(dir, 'clustermesh');
      await run('mkdir', ['-p', meshDir]);
      await etcd1.writeClientConfig(join(meshDir, 'cluster1'));

      const authority = await createCA('operator-k8s-test-ca');
      const leaf = await issueCert(authority, loopbackServerCertOptions('kube'));
      const token = `token-${Math.random().toString(36).slice(2)}`;
      const port = await freePort('127.0.0.1');
      startServer = async () => {
        server = new KubeApiServer({
          registry: reg2,
          tls: { ca: authority.cert, cert: leaf.cert, key: leaf.key },
          token,
          host: '127.0.0.1',
          port,
        });
        await server.start();
      };
      await startServer();
      proxy = await TcpProxy.start({ host: '127.0.0.1', port });
      kubectlConfig = join(dir, 'kubeconfig');
      await writeFile(
        kubectlConfig,
        kubeconfigYaml([{ name: 'cluster2', server: server.url, caPem: authority.cert, token }]),
      );
      operatorConfig = join(dir, 'operator-kubeconfig');
      await writeFile(
        operatorConfig,
        kubeconfigYaml([
          {
            name: 'cluster2',
            server: `https://127.0.0.1:${proxy.port}`,
            caPem: authority.cert,
            token,
          },
        ]),
      );
      await kubectl(['apply'], exported('web', '127.2.128.10', '127.2.1.5'));
      const health = await freePort('127.0.0.1');
      healthUrl = `http://127.0.0.1:${health}`;
      operator = new DaemonProcess(
        'operator',
        [
          'operator',
          '--cluster-name',
          'cluster2',
          '--cluster-id',
          '2',
          '--kvstore-opt',
          `etcd.address=${etcd2.clientUrl}`,
          '--clustermesh-config',
          meshDir,
          '--health-addr',
          `127.0.0.1:${health}`,
          '--remote-sync-timeout',
          '5s',
          '--k8s-kubeconfig-path',
          operatorConfig,
        ],
        join(dir, 'operator.log'),
      );
      operator.start();
    });

    after(async () => {
      await operator.stop();
      await proxy.close();
      await server.stop();
      await api1.stop();
      await Promise.all([b1.close(), b2.close()]);
      await Promise.all([etcd1.destroy(), etcd2.destroy()]);
      await rm(dir, { recursive: true, force: true });
    });

    it('writes the ServiceImports, derived Services, MCS EndpointSlices and ServiceExport conditions through the API server', async () => {
      await eventually(async () => {
        const st = await status();
        assert.equal(st.ready, true, JSON.stringify(st));
        assert.equal(st.kubernetes?.ok, true, JSON.stringify(st));
        const { svc } = await imported('web', 'cluster2');
        const se = await getObject('serviceexports.multicluster.x-k8s.io', 'web');
        const conds = Object.fromEntries(
          (se?.status?.conditions ?? []).map((c) => [c.type, c.status]),
        );
        assert.deepEqual(conds, { Valid: 'True', Ready: 'True', Conflict: 'False' });
        const slices = JSON.parse(
          await kubectl([
            'get',
            'endpointslices',
            '-l',
            `multicluster.kubernetes.io/service-name=web`,
            '-o',
            'json',
          ]),
        ) as { items: KubeObject[] };
        assert.deepEqual(
          slices.items.map((s) => [s.metadata.labels?.['kubernetes.io/service-name'], s.endpoints]),
          [[svc.metadata.name, [{ addresses: ['127.2.1.5'], conditions: { ready: true } }]]],
        );
        await imported('remote-hello', 'cluster1');
      }, 60_000).catch(withLog);
      const st = await status();
      assert.ok((st.kubernetes?.writes.writes ?? 0) > 0, JSON.stringify(st));
      const metrics = await (await fetch(`${healthUrl}/metrics`)).text();
      assert.match(
        metrics,
        /cilium_k8s_client_api_calls_total\{[^}]*method="POST",return_code="201"\}/,
      );
    });

    it('the import becomes Ready with the ClusterIP its derived Service gets', async () => {
      const derived = derivedServiceName('default', 'web');
      // The cluster's allocator (not running here) would set it.
      await reg2.patch('Service', 'default', derived, (s) => ({
        ...s,
        spec: { ...s.spec, clusterIP: '127.2.128.99', clusterIPs: ['127.2.128.99'] },
      }));
      await eventually(async () => {
        const si = await getObject('serviceimports.multicluster.x-k8s.io', 'web');
        assert.deepEqual(si?.spec?.ips, ['127.2.128.99']);
        assert.equal(si.status?.conditions?.find((c) => c.type === 'Ready')?.status, 'True');
      }, 30_000).catch(withLog);
    });

    it('a cut watch resumes: an export made meanwhile is imported, nothing else rewritten', async () => {
      const before = (await imported('web', 'cluster2')).si.metadata.resourceVersion;
      await proxy.block();
      await kubectl(['apply'], exported('cut', '127.2.128.11', '127.2.1.6'));
      await proxy.unblock();
      await eventually(async () => {
        await imported('cut', 'cluster2');
      }, 30_000).catch(withLog);
      assert.equal((await imported('web', 'cluster2')).si.metadata.resourceVersion, before);
    });

    it('an expired resourceVersion (410 Gone) re-lists: changes made while cut off and compacted away are all applied', async () => {
      await proxy.block();
      await kubectl(['delete', 'serviceexport.multicluster.x-k8s.io', 'cut']);
      await kubectl(['apply'], exported('gone', '127.2.128.12', '127.2.1.7'));
      const admin = etcd2.createClient();
      try {
        const head = await admin.kv.range({ key: Buffer.from('compact-probe') });
        await admin.kv.compact({ revision: head.header.revision, physical: true });
      } finally {
        admin.close();
      }
      await eventually(async () => {
        const st = await status();
        assert.equal(st.kubernetes?.ok, false, JSON.stringify(st));
      }, 30_000);
      await proxy.unblock();
      await eventually(async () => {
        await imported('gone', 'cluster2');
        assert.equal(await getObject('serviceimports.multicluster.x-k8s.io', 'cut'), undefined);
        assert.equal(await getObject('service', derivedServiceName('default', 'cut')), undefined);
        await imported('web', 'cluster2');
        await imported('remote-hello', 'cluster1');
        assert.equal((await status()).kubernetes?.ok, true);
      }, 45_000).catch(withLog);
    });

    it('an API server restart: writes that failed while it was down are retried, nothing lost', async () => {
      await server.stop();
      // A remote change needs writes the API server cannot take now.
      await reg1.apply(remoteExport('remote-late', '127.1.128.31'));
      await eventually(async () => {
        const st = await status();
        assert.equal(st.kubernetes?.ok, false, JSON.stringify(st));
        assert.equal(st.kubernetes.writes.ok, false, JSON.stringify(st));
        assert.match(st.kubernetes.writes.lastError ?? '', /ECONNREFUSED|ECONNRESET|socket/);
      }, 30_000).catch(withLog);
      await startServer();
      await eventually(async () => {
        await imported('remote-late', 'cluster1');
        await imported('remote-hello', 'cluster1');
        await imported('web', 'cluster2');
        await imported('gone', 'cluster2');
        const st = await status();
        assert.equal(st.kubernetes?.ok, true, JSON.stringify(st));
        assert.equal(st.kubernetes.writes.ok, true, JSON.stringify(st));
      }, 60_000).catch(withLog);
    });

    it('the writer re-reads and retries on 409 Conflict, and a delete of an absent object is done', async () => {
      const writer = kubeWriter(loadKubeConfig(kubectlConfig), { log: silentLogger });
      let calls = 0;
      await writer.patch('ServiceExport', 'default', 'web', (cur) => {
        calls++;
        return {
          ...cur,
          metadata: { ...cur.metadata, labels: { ...cur.metadata.labels, solo: 'yes' } },
        };
      });
      assert.equal(calls, 1, 'no retry without a concurrent writer');
      // A racer writes between the writer's read and its write (it starts when the writer
      // reads): the writer's stale resourceVersion gets 409, it re-reads and writes again.
      // Both writes must survive whichever order they land in.
      for (let round = 1; round <= 10 && writer.status().conflicts === 0; round++) {
        let racer: Promise<unknown> = Promise.resolve();
        await writer.patch('ServiceExport', 'default', 'web', (cur) => {
          if (racer instanceof Promise && calls === 1) {
            racer = reg2.patch('ServiceExport', 'default', 'web', (s) => ({
              ...s,
              metadata: {
                ...s.metadata,
                annotations: { ...s.metadata.annotations, racer: String(round) },
              },
            }));
          }
          calls = 2;
          return {
            ...cur,
            metadata: { ...cur.metadata, labels: { ...cur.metadata.labels, mine: String(round) } },
          };
        });
        await racer;
        calls = 1;
        const se = await getObject('serviceexports.multicluster.x-k8s.io', 'web');
        assert.equal(se?.metadata.labels?.mine, String(round), "the writer's change is stored");
        assert.equal(se.metadata.annotations?.racer, String(round), "the racer's write is kept");
      }
      assert.ok(writer.status().conflicts > 0, `a 409 was met: ${JSON.stringify(writer.status())}`);
      assert.equal(await writer.delete('EndpointSlice', 'default', 'no-such-slice'), false);
      assert.equal(writer.status().failures, 0, JSON.stringify(writer.status()));
    });

    it('KVStoreMesh with --k8s-kubeconfig-path reports whether the API server answers', async () => {
      const health = await freePort('127.0.0.1');
      const kvm = new DaemonProcess(
        'kvstoremesh',
        [
          'kvstoremesh',
          '--cluster-name',
          'cluster2',
          '--cluster-id',
          '2',
          '--kvstore-opt',
          `etcd.address=${etcd2.clientUrl}`,
          '--clustermesh-config',
          meshDir,
          '--health-addr',
          `127.0.0.1:${health}`,
          '--k8s-kubeconfig-path',
          operatorConfig,
        ],
        join(dir, 'kvstoremesh.log'),
      );
      kvm.start();
      const url = `http://127.0.0.1:${health}/status`;
      type KvmStatus = {
        kubernetes?: { connected: boolean; version?: string; lastError?: string };
      };
      try {
        await eventually(async () => {
          const st = await getJson<KvmStatus>(url);
          assert.equal(st.kubernetes?.connected, true, JSON.stringify(st));
          assert.match(st.kubernetes.version ?? '', /^v1\./);
        }, 30_000).catch(async (err: unknown) => {
          throw new Error(`${String(err)}\n${await kvm.logTail(30)}`);
        });
        await proxy.block();
        await eventually(async () => {
          const st = await getJson<KvmStatus>(url);
          assert.equal(st.kubernetes?.connected, false, JSON.stringify(st));
          assert.match(st.kubernetes.lastError ?? '', /ECONNREFUSED|ECONNRESET|socket/);
        }, 20_000);
        await proxy.unblock();
        await eventually(async () => {
          assert.equal((await getJson<KvmStatus>(url)).kubernetes?.connected, true);
        }, 20_000);
      } finally {
        await proxy.unblock();
        await kvm.stop();
      }
    });

    it('refuses a missing kubeconfig in one line; the help says what KVStoreMesh does with one', async () => {
      const r = await run(
        process.execPath,
        [
          BIN,
          'operator',
          '--cluster-name',
          'cluster2',
          '--cluster-id',
          '2',
          '--kvstore-opt',
          `etcd.address=${etcd2.clientUrl}`,
          '--k8s-kubeconfig-path',
          join(dir, 'missing'),
        ],
        { env: { ...process.env, LOG_LEVEL: 'silent' }, timeout: 30_000 },
      ).then(
        () => ({ code: 0, stderr: '' }),
        (err: unknown) => {
          const e = err as { code?: number; stderr?: string };
          return { code: e.code ?? -1, stderr: e.stderr ?? '' };
        },
      );
      assert.notEqual(r.code, 0, 'refused');
      assert.match(r.stderr, /--k8s-kubeconfig-path .*missing: ENOENT/);
      assert.equal(r.stderr.trim().split('\n').length, 1, r.stderr);
      const help = await run(process.execPath, [BIN, 'kvstoremesh', '--help'], {
        env: { ...process.env, LOG_LEVEL: 'silent' },
      });
      assert.match(
        help.stdout.replace(/\s+/g, ' '),
        /--k8s-kubeconfig-path <file> Kubernetes mode: KVStoreMesh reads no Kubernetes object/,
      );
    });
  },
);
