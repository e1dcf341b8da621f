/**
 * `npm run bench -- kubeapi [--pods N (10000)] [--page N (100)] [--runs N (7)]
 * [--watchers N (100)] [--updates N (1000)] [--rate N/s (250; 0: back to back)]
 * [--objects N (500)]`: the Kubernetes API server
 * over a real etcd, each number against a baseline measured in the same run:
 *
 * - `kubectl get pods` (a namespace of `--page` pods) against the same kubectl reading a
 *   static HTTPS server that replays our recorded answers (goal ≤ 1.2×);
 * - a list of `--pods` pods (JSON and Table) against a raw etcd3 paged list (goal ≤ 300 ms);
 * - `--watchers` watches receiving `--updates` updates: delivery p99 from each write's
 *   acknowledgement (goal ≤ 50 ms), against a bare HTTPS fan-out of one raw etcd3 watcher
 *   to as many watchers, run just before with a writer of its own (the floor of any watch
 *   server in Node), and
 *   one raw etcd3 watcher of the same key in the same run. The watchers and the writer run in processes of their own
 *   (`kubeapi-watch-client.ts`), the writer with one write in flight at `--rate` updates
 *   a second: timed from the write's start, or in the server's process, the number
 *   measured etcd's queue and the shared event loop (the raw watcher was as late as ours),
 *   not the fan-out; back to back, it measures how far a queue grows when writes come
 *   faster than 100 copies of them can be sent (`--rate 0` shows that). The delay from the
 *   write's start is still reported;
 * - `kubectl apply -f` of `--objects` ConfigMaps (create, then unchanged), against
 *   `clustermesh apply -f` of the same file (reported).
 */
import { execFile, fork, type ChildProcess } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, request, type Agent as HttpsAgent } from 'node:https';
import { Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { stringify } from 'yaml';
import { kubeconfigYaml } from '../src/kubeapi/kubeconfig.js';
import { KubeApiServer } from '../src/kubeapi/server.js';
import { EtcdBackend } from '../src/kvstore/etcd.js';
import { resourcePrefix } from '../src/registry/codec.js';
import { kindInfo } from '../src/registry/kinds.js';
import { Registry } from '../src/registry/registry.js';
import type { RegistryObject } from '../src/registry/types.js';
import { startEtcd } from '../test/support/etcd.js';
import { createCA, issueCert, loopbackServerCertOptions } from '../test/support/tls.js';
import type {
  ClientMessage,
  CollectRequest,
  FanoutConfig,
  Received,
  WatchersConfig,
  WriterConfig,
} from './kubeapi-watch-client.js';
import { flag, rawPagedList, report, summarize, type Row } from './lib.js';

const BIN = fileURLToPath(new URL('../bin/clustermesh', import.meta.url));
const TOKEN = 'bench-token';

function run(cmd: string, args: readonly string[], env: NodeJS.ProcessEnv = {}): Promise<number> {
  const t0 = performance.now();
  return new Promise((resolve, reject) => {
    execFile(
      cmd,
      args,
      { env: { ...process.env, ...env }, maxBuffer: 256 * 1024 * 1024 },
      (err, _out, stderr) => {
        if (err !== null)
          reject(new Error(`${cmd} ${args.slice(0, 6).join(' ')}: ${stderr || err.message}`));
        else resolve(performance.now() - t0);
      },
    );
  });
}

const CLIENT = fileURLToPath(new URL('./kubeapi-watch-client.ts', import.meta.url));

/** A process of `kubeapi-watch-client.ts`, awaiting its role. */
function client(): ChildProcess {
  return fork(CLIENT, [], {
    execArgv: ['--import', 'tsx'],
    stdio: ['ignore', 'inherit', 'inherit', 'ipc'],
  });
}

/** The next message of `type` from `child`; rejects when it exits first. */
function nextMessage<T extends ClientMessage['type']>(
  child: ChildProcess,
  type: T,
): Promise<Extract<ClientMessage, { type: T }>> {
  return new Promise((resolve, reject) => {
    const onMessage = (msg: unknown): void => {
      if ((msg as { type?: string }).type !== type) return;
      child.off('exit', onExit);
      child.off('message', onMessage);
      resolve(msg as Extract<ClientMessage, { type: T }>);
    };
    const onExit = (code: number | null): void => {
      child.off('message', onMessage);
      reject(new Error(`watch client exited (${String(code)}) before '${type}'`));
    };
    child.on('message', onMessage);
    child.once('exit', onExit);
  });
}

/**
 * Delay of each receive after its update's `since` time (the write's start or its
 * acknowledgement), in ms. An event can reach a watcher before the writer hears back from
 * etcd; that delivery counts as 0 after the acknowledgement.
 */
function delays(got: Received, since: readonly number[]): number[] {
  const out: number[] = [];
  for (let i = 0; i < got.n.length; i++) {
    const t0 = since[got.n[i] ?? -1];
    const t = got.t[i];
    if (t0 !== undefined && t !== undefined) out.push(Math.max(0, t - t0));
  }
  return out;
}

function median(xs: readonly number[]): number {
  return summarize([...xs]).p50;
}

function pod(i: number, namespace: string): RegistryObject {
  const name = `bench-${String(i).padStart(5, '0')}-abcde`;
  return {
    apiVersion: 'v1',
    kind: 'Pod',
    metadata: { name, namespace, labels: { app: 'bench', shard: String(i % 10) } },
    spec: {
      nodeName: `cluster1-node${(i % 4) + 1}`,
      containers: [
        {
          name: 'c',
          image: 'clustermesh/echo',
          ports: [{ containerPort: 8080 }],
          env: [{ name: 'I', value: String(i) }],
        },
      ],
    },
    status: {
      phase: 'Running',
      podIP: `127.1.${(i >> 8) % 256}.${i % 256}`,
      conditions: [{ type: 'Ready', status: 'True' }],
    },
  };
}

interface Recorded {
  code: number;
  headers: Record<string, string>;
  body: Buffer;
}

/** GETs `path` from the API server as `accept`, keeping status, content type and body. */
function fetchRaw(
  server: KubeApiServer,
  ca: string,
  path: string,
  accept: string,
  agent?: HttpsAgent,
): Promise<Recorded> {
  return new Promise((resolve, reject) => {
    const req = request(
      new URL(path, server.url),
      { ca, agent, headers: { Authorization: `Bearer ${TOKEN}`, Accept: accept } },
      (res) => {
        const chunks: Buffer[] = [];
        res.on('data', (d: Buffer) => chunks.push(d));
        res.on('end', () =>
          resolve({
            code: res.statusCode ?? 0,
            headers: { 'Content-Type': res.headers['content-type'] ?? 'application/json' },
            body: Buffer.concat(chunks),
          }),
        );
      },
    );
    req.on('error', reject);
    req.end();
  });
}

export async function main(args: string[]): Promise<void> {
  const pods = flag(args, 'pods', 'positive integer', 10_000);
  const page = flag(args, 'page', 'positive integer', 100);
  const runs = flag(args, 'runs', 'positive integer', 7);
  const watchers = flag(args, 'watchers', 'positive integer', 100);
  const updates = flag(args, 'updates', 'positive integer', 1000);
  const objects = flag(args, 'objects', 'positive integer', 500);
  const rate = flag(args, 'rate', 'non-negative integer', 250);

  const dir = await mkdtemp(join(tmpdir(), 'bench-kubeapi-'));
  const etcd = await startEtcd({ snapshotCount: 100_000, logLevel: 'error' });
  const backend = new EtcdBackend({ endpoints: etcd.endpoints, callTimeoutMs: 30_000 });
  await backend.connect();
  const raw = etcd.createClient();
  const registry = new Registry(backend);
  const authority = await createCA('bench-ca');
  const leaf = await issueCert(authority, loopbackServerCertOptions('bench-kube'));
  const ca = authority.cert;
  const server = new KubeApiServer({
    registry,
    tls: { ca, cert: leaf.cert, key: leaf.key },
    token: TOKEN,
    host: '127.0.0.1',
  });
  const statics: { close: () => void }[] = [];
  try {
    // ---- seed: `page` pods in default, `pods` pods in bench ----
    const seed = [
      ...Array.from({ length: page }, (_, i) => pod(i, 'default')),
      ...Array.from({ length: pods }, (_, i) => pod(i, 'bench')),
    ];
    for (let i = 0; i < seed.length; i += 512) await registry.apply(seed.slice(i, i + 512));
    await server.start();
    const kubeconfig = join(dir, 'kubeconfig');
    await writeFile(
      kubeconfig,
      kubeconfigYaml([{ name: 'bench', server: server.url, caPem: ca, token: TOKEN }]),
    );

    // ---- kubectl get pods: our server against a static replay of its answers ----
    const recorded = new Map<string, Recorded>();
    const recorder = createServer({ cert: leaf.cert, key: leaf.key }, (req, res) => {
      const accept = req.headers.accept ?? '';
      const key = `${req.url ?? ''}|${accept}`;
      const hit = recorded.get(key);
      const answer = (r: Recorded): void => {
        res.writeHead(r.code, { ...r.headers, 'Content-Length': String(r.body.length) });
        res.end(r.body);
      };
      if (hit !== undefined) answer(hit);
      else {
        fetchRaw(server, ca, req.url ?? '/', accept).then(
          (r) => {
            recorded.set(key, r);
            answer(r);
          },
          (err: unknown) => {
            res.writeHead(502);
            res.end(String(err));
          },
        );
      }
    });
    await new Promise<void>((resolve) => recorder.listen(0, '127.0.0.1', resolve));
    statics.push({ close: () => recorder.close() });
    const staticUrl = `https://127.0.0.1:${(recorder.address() as AddressInfo).port}`;
    const staticConfig = join(dir, 'kubeconfig-static');
    await writeFile(
      staticConfig,
      kubeconfigYaml([{ name: 'bench', server: staticUrl, caPem: ca, token: TOKEN }]),
    );
    const get = (config: string): Promise<number> =>
      run(
        'kubectl',
        [
          '--kubeconfig',
          config,
          '--cache-dir',
          join(dir, `cache-${config === kubeconfig ? 'ours' : 'static'}`),
          'get',
          'pods',
        ],
        { HOME: dir },
      );
    // Warm both discovery caches; the first static run records the answers.
    await get(kubeconfig);
    await get(staticConfig);
    await get(staticConfig);
    const ours: number[] = [];
    const replay: number[] = [];
    for (let i = 0; i < runs; i++) {
      ours.push(await get(kubeconfig));
      replay.push(await get(staticConfig));
    }

    // ---- list of `pods` pods ----
    const agent = new Agent({ keepAlive: true, maxSockets: watchers + 8, ca });
    const listPath = '/api/v1/namespaces/bench/pods?limit=500';
    const tableAccept = 'application/json;as=Table;v=v1;g=meta.k8s.io,application/json';
    const listJson: number[] = [];
    const listTable: number[] = [];
    const listRaw: number[] = [];
    let listed = 0;
    for (let i = 0; i < Math.max(3, Math.ceil(runs / 2)); i++) {
      let t0 = performance.now();
      const j = await fetchRaw(server, ca, listPath, 'application/json', agent);
      listJson.push(performance.now() - t0);
      listed = (JSON.parse(j.body.toString()) as { items: unknown[] }).items.length;
      t0 = performance.now();
      await fetchRaw(server, ca, listPath, tableAccept, agent);
      listTable.push(performance.now() - t0);
      t0 = performance.now();
      await rawPagedList(raw, resourcePrefix(kindInfo('Pod'), 'bench'), 256, (v) => JSON.parse(v));
      listRaw.push(performance.now() - t0);
    }
    if (listed !== pods) throw new Error(`listed ${listed} pods, expected ${pods}`);

    // ---- watchers ----
    await registry.apply([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'watched', namespace: 'default' },
        data: { n: '0' },
      },
    ]);
    const cm = await registry.get('ConfigMap', 'default', 'watched');
    const startRv = cm?.metadata.resourceVersion ?? '0';
    const rawKey = `${resourcePrefix(kindInfo('ConfigMap'), 'default')}watched`;
    // The fan-out floor: a bare watch server in its own process (see FanoutConfig), read
    // by a watchers' process like ours. The two run one after the other, each with its own
    // writer: run at once, each delivered 100 copies of every update while the other did
    // the same on the same 2 cores, so each measured the other's load as much as itself.
    const fanoutProc = client();
    const listening = nextMessage(fanoutProc, 'listening');
    fanoutProc.send({
      role: 'fanout',
      cert: leaf.cert,
      key: leaf.key,
      endpoints: etcd.endpoints,
      rawKey,
    } satisfies FanoutConfig);
    const fanoutUrl = (await listening).url;
    const watch = (url: string): { proc: ChildProcess; ready: Promise<unknown> } => {
      const proc = client();
      const ready = nextMessage(proc, 'ready');
      proc.send({
        role: 'watchers',
        url,
        token: TOKEN,
        ca,
        watchers,
        endpoints: etcd.endpoints,
        rawKey,
      } satisfies WatchersConfig);
      return { proc, ready };
    };
    // The watchers' processes answer once every watcher has every update, or after 30 s.
    const collect = (proc: ChildProcess): Promise<{ http: Received; raw: Received }> => {
      const p = nextMessage(proc, 'received');
      proc.send({
        type: 'collect',
        http: watchers * updates,
        raw: updates,
        timeoutMs: 30_000,
      } satisfies CollectRequest);
      return p;
    };
    /** `updates` writes from a writer process of its own: when each started and was acked. */
    const write = async (): Promise<{ start: number[]; ack: number[] }> => {
      const writerProc = client();
      const writtenP = nextMessage(writerProc, 'written');
      writerProc.send({
        role: 'writer',
        endpoints: etcd.endpoints,
        updates,
        rate,
        namespace: 'default',
        name: 'watched',
      } satisfies WriterConfig);
      return writtenP;
    };
    const floorWatch = watch(fanoutUrl);
    await floorWatch.ready;
    const floorWritten = await write();
    const floor = await collect(floorWatch.proc);
    fanoutProc.send({ type: 'collect', http: 0, raw: 0, timeoutMs: 0 } satisfies CollectRequest);
    const floorFromAck = delays(floor.http, floorWritten.ack);

    const watchedRv =
      (await registry.get('ConfigMap', 'default', 'watched'))?.metadata.resourceVersion ?? startRv;
    const ourWatch = watch(
      new URL(
        `/api/v1/namespaces/default/configmaps?watch=true&resourceVersion=${watchedRv}&fieldSelector=metadata.name%3Dwatched`,
        server.url,
      ).toString(),
    );
    await ourWatch.ready;
    const written = await write();
    const writeSeconds = ((written.ack[updates] ?? 0) - (written.start[1] ?? 0)) / 1000;
    const got = await collect(ourWatch.proc);
    const received = got.http.n.length;
    const fromAck = delays(got.http, written.ack);
    const fromStart = delays(got.http, written.start);
    const rawFromAck = delays(got.raw, written.ack);
    const rawFromStart = delays(got.raw, written.start);

    // ---- kubectl apply of `objects` ConfigMaps, against clustermesh apply ----
    const docs = (prefix: string): string =>
      Array.from({ length: objects }, (_, i) =>
        stringify({
          apiVersion: 'v1',
          kind: 'ConfigMap',
          metadata: { name: `${prefix}-${i}`, namespace: 'default' },
          data: { index: String(i) },
        }),
      ).join('---\n');
    await writeFile(join(dir, 'kubectl.yaml'), docs('k'));
    await writeFile(join(dir, 'cli.yaml'), docs('c'));
    const applyArgs = (file: string): string[] => [
      '--kubeconfig',
      kubeconfig,
      '--cache-dir',
      join(dir, 'cache-ours'),
      'apply',
      '-f',
      file,
    ];
    const kubectlCreate = await run('kubectl', applyArgs(join(dir, 'kubectl.yaml')), { HOME: dir });
    const kubectlAgain = await run('kubectl', applyArgs(join(dir, 'kubectl.yaml')), { HOME: dir });
    const cliArgs = [
      'apply',
      '-f',
      join(dir, 'cli.yaml'),
      '--kvstore-opt',
      `etcd.address=${etcd.endpoints.join(',')}`,
    ];
    const cliCreate = await run(BIN, cliArgs, { LOG_LEVEL: 'silent' });
    const cliAgain = await run(BIN, cliArgs, { LOG_LEVEL: 'silent' });

    const w = summarize(fromAck);
    const rw = summarize(rawFromAck);
    const ws = summarize(fromStart);
    const rws = summarize(rawFromStart);
    const fw = summarize(floorFromAck);
    const rows: Row[] = [
      {
        metric: `kubectl get pods (${page} pods), median ms`,
        ours: median(ours),
        raw: median(replay),
        unit: 'ms',
        higherIsBetter: false,
        goal: '≤ 1.2× (static replay)',
      },
      {
        metric: `list ${pods} pods (JSON), median ms`,
        ours: median(listJson),
        raw: median(listRaw),
        unit: 'ms',
        higherIsBetter: false,
        goal: '≤ 300 ms',
      },
      {
        metric: `list ${pods} pods (Table), median ms`,
        ours: median(listTable),
        raw: median(listRaw),
        unit: 'ms',
        higherIsBetter: false,
        goal: '≤ 300 ms',
      },
      {
        metric: `${watchers} watchers × ${updates} updates, p50 ms from ack (vs fan-out floor)`,
        ours: w.p50,
        raw: fw.p50,
        unit: 'ms',
        higherIsBetter: false,
      },
      {
        metric: `${watchers} watchers × ${updates} updates, p99 ms from ack (vs fan-out floor)`,
        ours: w.p99,
        raw: fw.p99,
        unit: 'ms',
        higherIsBetter: false,
        goal: '≤ 50 ms',
      },
      {
        metric: `${watchers} watchers × ${updates} updates, p99 ms from ack (vs 1 etcd watcher)`,
        ours: w.p99,
        raw: rw.p99,
        unit: 'ms',
        higherIsBetter: false,
      },
      {
        metric: `${watchers} watchers × ${updates} updates, p99 ms from write start (vs 1 etcd watcher)`,
        ours: ws.p99,
        raw: rws.p99,
        unit: 'ms',
        higherIsBetter: false,
        goal: 'report',
      },
      {
        metric: `apply ${objects} objects (create), ms`,
        ours: kubectlCreate,
        raw: cliCreate,
        unit: 'ms',
        higherIsBetter: false,
        goal: 'report',
      },
      {
        metric: `apply ${objects} objects (unchanged), ms`,
        ours: kubectlAgain,
        raw: cliAgain,
        unit: 'ms',
        higherIsBetter: false,
        goal: 'report',
      },
    ];
    console.log(
      `baselines: static replay of recorded answers; raw etcd3 paged list (JSON.parse); a bare HTTPS fan-out of one raw etcd3 watcher (its own process, read by as many watchers, just before ours with a writer of its own); one raw etcd3 watcher (in the watchers' process); clustermesh apply -f\n` +
        `watch delays: receive time minus the write's acknowledgement (0 when the event came first), the writer in its own process, one write in flight\n` +
        `watch events received: ${received} of ${watchers * updates} (fan-out floor: ${floor.http.n.length}); ${updates} updates written in ${writeSeconds.toFixed(2)} s (asked: ${rate === 0 ? 'back to back' : `${rate}/s`})`,
    );
    report(
      'kubeapi',
      rows,
      {
        pods,
        page,
        watchers,
        updates,
        rate,
        writeSeconds: Number(writeSeconds.toFixed(2)),
        objects,
        received,
      },
      ['kube-apiserver', 'baseline'],
    );
  } finally {
    for (const s of statics) s.close();
    await server.stop();
    raw.close();
    await backend.close();
    await etcd.destroy();
    await rm(dir, { recursive: true, force: true });
  }
}
