/**
 * The client side of `bench/kubeapi.ts`'s watch measurement, in its own process (forked by
 * the bench with `--import tsx`), so that neither the readers nor the writer share an event
 * loop with the API server under test: when they did, a busy server delayed the baseline's
 * etcd watcher and the writer's timestamps as much as its own watchers, and the numbers said
 * more about that one loop than about the fan-out.
 *
 * Roles (the first argument):
 * - `watchers`: opens the HTTP watches and one raw etcd3 watcher of the same key, answers
 *   `ready`, and on `collect` sends every receive time (epoch ms, sub-millisecond);
 * - `writer`: applies the updates one at a time through its own Registry over its own etcd
 *   connection and sends, per update, when its write started and when it was acknowledged.
 *
 * Times are `performance.timeOrigin + performance.now()`, comparable across processes of one
 * machine.
 */
import type { ServerResponse } from 'node:http';
import { createServer, request, Agent } from 'node:https';
import type { AddressInfo } from 'node:net';
import { Etcd3 } from 'etcd3';
import { EtcdBackend } from '../src/kvstore/etcd.js';
import { Registry } from '../src/registry/registry.js';

export interface WatchersConfig {
  readonly role: 'watchers';
  readonly url: string;
  readonly token: string;
  readonly ca: string;
  readonly watchers: number;
  readonly endpoints: readonly string[];
  readonly rawKey: string;
}

/**
 * The fan-out baseline: the least any watch server could do, in a process of its own. One
 * raw etcd3 watcher of the key, and each change written as the same bytes (one
 * newline-terminated JSON line) to every HTTPS watch connected to it; no decoding, cache,
 * selection or Kubernetes envelope beyond the line.
 */
export interface FanoutConfig {
  readonly role: 'fanout';
  readonly cert: string;
  readonly key: string;
  readonly endpoints: readonly string[];
  readonly rawKey: string;
}

export interface WriterConfig {
  readonly role: 'writer';
  readonly endpoints: readonly string[];
  readonly updates: number;
  /** Updates per second (0: as fast as etcd acknowledges them). */
  readonly rate: number;
  readonly namespace: string;
  readonly name: string;
}

/** Sent by the bench once the writer is done: answer when this many events arrived. */
export interface CollectRequest {
  readonly type: 'collect';
  readonly http: number;
  readonly raw: number;
  readonly timeoutMs: number;
}

/** Receive times per update number: `n[i]` arrived at `t[i]`. */
export interface Received {
  readonly n: number[];
  readonly t: number[];
}

export type ClientMessage =
  | { readonly type: 'ready' }
  | { readonly type: 'listening'; readonly url: string }
  | { readonly type: 'received'; readonly http: Received; readonly raw: Received }
  | { readonly type: 'written'; readonly start: number[]; readonly ack: number[] };

const now = (): number => performance.timeOrigin + performance.now();

/** Sends `msg` to the bench; resolves once it is on its way. */
function send(msg: ClientMessage): Promise<void> {
  return new Promise((resolve, reject) => {
    if (process.send === undefined) {
      reject(new Error('not forked with an IPC channel'));
      return;
    }
    process.send(msg, undefined, {}, (err) => {
      if (err === null) resolve();
      else reject(err);
    });
  });
}

/** The update number of a watch event line or stored value, without a full parse. */
const N = /"data":\{"n":"(\d+)"/;

async function watchers(cfg: WatchersConfig): Promise<void> {
  const agent = new Agent({ keepAlive: true, maxSockets: cfg.watchers + 8, ca: cfg.ca });
  const http: Received = { n: [], t: [] };
  const raw: Received = { n: [], t: [] };
  const streams = await Promise.all(
    Array.from(
      { length: cfg.watchers },
      () =>
        new Promise<{ destroy: () => void }>((resolve, reject) => {
          const req = request(
            new URL(cfg.url),
            { agent, headers: { Authorization: `Bearer ${cfg.token}` } },
            (res) => {
              if (res.statusCode !== 200) {
                reject(new Error(`watch answered ${String(res.statusCode)}`));
                return;
              }
              let buf = '';
              res.on('data', (d: Buffer) => {
                const t = now();
                buf += d.toString();
                let nl;
                while ((nl = buf.indexOf('\n')) >= 0) {
                  const m = N.exec(buf.slice(0, nl));
                  buf = buf.slice(nl + 1);
                  if (m?.[1] !== undefined) {
                    http.n.push(Number(m[1]));
                    http.t.push(t);
                  }
                }
              });
              resolve({ destroy: () => req.destroy() });
            },
          );
          req.on('error', (err) => {
            if (!/socket hang up|aborted/.test(err.message)) reject(err);
          });
          req.end();
        }),
    ),
  );
  const client = new Etcd3({ hosts: [...cfg.endpoints] });
  const rawWatcher = await client.watch().key(cfg.rawKey).create();
  rawWatcher.on('put', (kv) => {
    const t = now();
    const m = N.exec(kv.value.toString());
    if (m?.[1] !== undefined) {
      raw.n.push(Number(m[1]));
      raw.t.push(t);
    }
  });
  onCollect = (req) => {
    collect(req).catch(fail);
  };
  const collect = async (req: CollectRequest): Promise<void> => {
    const deadline = Date.now() + req.timeoutMs;
    while ((http.n.length < req.http || raw.n.length < req.raw) && Date.now() < deadline)
      await new Promise((r) => setTimeout(r, 20));
    for (const s of streams) s.destroy();
    await send({ type: 'received', http, raw });
    await rawWatcher.cancel();
    client.close();
    agent.destroy();
    process.disconnect();
  };
  await send({ type: 'ready' });
}

async function fanout(cfg: FanoutConfig): Promise<void> {
  const responses = new Set<ServerResponse>();
  const server = createServer({ cert: cfg.cert, key: cfg.key }, (req, res) => {
    res.writeHead(200, { 'Content-Type': 'application/json', 'Transfer-Encoding': 'chunked' });
    res.flushHeaders();
    responses.add(res);
    req.on('close', () => responses.delete(res));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const client = new Etcd3({ hosts: [...cfg.endpoints] });
  const watcher = await client.watch().key(cfg.rawKey).create();
  watcher.on('put', (kv) => {
    const line = Buffer.concat([
      Buffer.from('{"type":"MODIFIED","object":'),
      kv.value,
      Buffer.from('}\n'),
    ]);
    for (const res of responses) res.write(line);
  });
  onCollect = () => {
    for (const res of responses) res.destroy();
    server.close();
    void watcher.cancel().finally(() => {
      client.close();
      process.disconnect();
    });
  };
  const { port } = server.address() as AddressInfo;
  await send({ type: 'listening', url: `https://127.0.0.1:${String(port)}/` });
}

async function writer(cfg: WriterConfig): Promise<void> {
  const backend = new EtcdBackend({ endpoints: [...cfg.endpoints], callTimeoutMs: 30_000 });
  await backend.connect();
  const registry = new Registry(backend);
  const start: number[] = [];
  const ack: number[] = [];
  // One write in flight at a time: the writer never queues work in etcd, so a receive time
  // minus its write's acknowledgement is the watch path's delay, not etcd's backlog. At a
  // fixed rate, update i is due at i/rate s; a late write goes at once (never two at once).
  const t0 = now();
  for (let i = 1; i <= cfg.updates; i++) {
    if (cfg.rate > 0) {
      const wait = t0 + (i * 1000) / cfg.rate - now();
      if (wait > 0) await new Promise((r) => setTimeout(r, wait));
    }
    start[i] = now();
    await registry.apply([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: cfg.name, namespace: cfg.namespace },
        data: { n: String(i) },
      },
    ]);
    ack[i] = now();
  }
  await send({ type: 'written', start, ack });
  await backend.close();
  process.disconnect();
}

let onCollect: ((req: CollectRequest) => void) | undefined;

// One listener for the process's life: it keeps the IPC channel (and the process) open
// until the bench's last message.
process.on('message', (msg: unknown) => {
  const m = msg as WatchersConfig | WriterConfig | FanoutConfig | CollectRequest;
  if ('type' in m) onCollect?.(m);
  else
    (m.role === 'watchers' ? watchers(m) : m.role === 'fanout' ? fanout(m) : writer(m)).catch(fail);
});

function fail(err: unknown): void {
  process.stderr.write(`${err instanceof Error ? (err.stack ?? err.message) : String(err)}\n`);
  process.exit(1);
}
