/**
 * The UI server against stand-ins for one agent API and the control API (plain HTTP
 * servers answering the routes the CLI reads), with a mesh.json pointing at them: the page
 * and its bundle, the snapshot, the event stream, and bad input. The real mesh is covered
 * by test/e2e/ui.test.ts.
 */
import assert from 'node:assert/strict';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { silentLogger } from '../../src/lib/logger.js';
import type { MeshState } from '../../src/localmesh/mesh-state.js';
import type { UiFlow, UiSnapshot } from '../../src/ui/model.js';
import { startUiServer, type UiServer } from '../../src/ui/server.js';
import { eventually } from '../support/eventually.js';

async function serve(
  routes: Record<string, (url: URL) => unknown>,
): Promise<{ url: string; server: Server }> {
  const server = createServer((req, res) => {
    const url = new URL(req.url ?? '/', 'http://x');
    const route = routes[url.pathname];
    if (route === undefined) {
      res.writeHead(404).end('not found');
      return;
    }
    res.writeHead(200, { 'content-type': 'application/json' }).end(JSON.stringify(route(url)));
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = (server.address() as AddressInfo).port;
  return { url: `http://127.0.0.1:${port}`, server };
}

describe('ui server', { timeout: 60_000 }, () => {
  let dir: string;
  let ui: UiServer;
  let agent: Server;
  let control: Server;
  const flows: UiFlow[] = [];

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-ui-unit-'));
    const a = await serve({
      '/v1/clustermesh': () => ({
        clusters: [
          {
            name: 'cluster2',
            connected: true,
            ready: false,
            status: 'remote kvstore not responding for more than 4s',
            synced: { nodes: true, endpoints: true, identities: true, services: true },
          },
        ],
      }),
      '/v1/services': () => [
        {
          service: 'default/rebel-base',
          frontend: '127.1.128.3:80/TCP',
          affinity: 'none',
          backends: [
            { address: '127.1.1.1:80/TCP', cluster: 'cluster1', health: 'healthy' },
            { address: '127.2.1.1:80/TCP', cluster: 'cluster2', health: 'healthy' },
          ],
        },
      ],
      // As the agent's flow log: after the cursor when there is one.
      '/v1/flows': (url) => {
        const since = Number(url.searchParams.get('since') ?? '0');
        return { flows: flows.filter((f) => f.seq > since), next: flows.length };
      },
      '/v1/endpoints': () => [{ id: 7, namespace: 'default', pod: 'x-wing-5fc4c95698-gi2k6' }],
      '/v1/endpoint': () => ({
        policy: {
          ingress: { enforced: false, defaultDeny: false, entries: [] },
          egress: {
            enforced: true,
            defaultDeny: true,
            entries: [
              {
                policy: { kind: 'CiliumNetworkPolicy', namespace: 'default', name: 'deny' },
                action: 'deny',
              },
            ],
          },
        },
      }),
    });
    agent = a.server;
    const c = await serve({
      '/v1/pods': (url) =>
        url.searchParams.get('cluster') !== 'cluster1'
          ? []
          : [
              {
                namespace: 'default',
                name: 'x-wing-5fc4c95698-gi2k6',
                node: 'cluster1-node1',
                ip: '127.1.1.2',
                phase: 'Running',
              },
            ],
      '/v1/objects': () => [],
    });
    control = c.server;
    const state: MeshState = {
      version: 1,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      kvstore: 'memory',
      kvstoremesh: false,
      control: c.url,
      clusters: [
        {
          name: 'cluster1',
          id: 1,
          kvstore: 'memory://cluster1',
          dns: '127.1.128.10:53',
          podCIDR: '127.1.0.0/17',
          serviceCIDR: '127.1.128.0/17',
          agents: [
            { node: 'cluster1-node1', ip: '127.1.0.1', podCIDR: '127.1.1.0/24', api: a.url },
          ],
        },
        {
          name: 'cluster2',
          id: 2,
          kvstore: 'memory://cluster2',
          dns: '127.2.128.10:53',
          podCIDR: '127.2.0.0/17',
          serviceCIDR: '127.2.128.0/17',
          // An agent nobody answers for: its node shows down, its connections failing.
          agents: [
            {
              node: 'cluster2-node1',
              ip: '127.2.0.1',
              podCIDR: '127.2.1.0/24',
              api: 'http://127.0.0.1:1',
            },
          ],
        },
      ],
    };
    await writeFile(join(dir, 'mesh.json'), JSON.stringify(state));
    await mkdir(join(dir, 'assets'));
    await writeFile(join(dir, 'assets', 'app.js'), 'console.log("app")\n');
    ui = await startUiServer({
      stateDir: dir,
      log: silentLogger,
      assetsDir: join(dir, 'assets'),
      statusIntervalMs: 50,
      objectsIntervalMs: 50,
      flowsIntervalMs: 20,
      requestTimeoutMs: 500,
    });
  });

  after(async () => {
    await ui.close();
    agent.close();
    control.close();
    await rm(dir, { recursive: true, force: true });
  });

  it('serves the page with the current snapshot inside, and the bundle', async () => {
    await eventually(async () => {
      const s = (await (await fetch(`${ui.url}/api/snapshot`)).json()) as UiSnapshot;
      assert.equal(s.services.length, 1, 'the global service is known');
    });
    const page = await (await fetch(`${ui.url}/`)).text();
    assert.match(page, /<script type="module" src="\/assets\/app.js"><\/script>/);
    const initial = /<script id="initial" type="application\/json">(.*)<\/script>/.exec(page)?.[1];
    assert.ok(initial !== undefined, 'the snapshot rides in the page');
    assert.equal((JSON.parse(initial) as UiSnapshot).mesh.state, 'running');
    const js = await fetch(`${ui.url}/assets/app.js`);
    assert.equal(js.status, 200);
    assert.match(js.headers.get('content-type') ?? '', /javascript/);
    assert.equal(await js.text(), 'console.log("app")\n');
    const css = await fetch(`${ui.url}/assets/app.css`);
    assert.equal(css.status, 503, 'a missing bundle file says how to build it');
    assert.match(await css.text(), /npm run build/);
    assert.equal((await fetch(`${ui.url}/assets/..%2fmesh.json`)).status, 404);
    assert.equal((await fetch(`${ui.url}/nope`)).status, 404);
  });

  it('reads connections, nodes, services and workloads from the APIs the CLI reads', async () => {
    const s = await eventually(async () => {
      const snap = (await (await fetch(`${ui.url}/api/snapshot`)).json()) as UiSnapshot;
      assert.equal(snap.workloads.length, 1, 'x-wing');
      return snap;
    });
    assert.deepEqual(
      s.clusters.map((c) => c.nodes.map((n) => `${n.name}:${n.up ? 'up' : 'down'}`)),
      [['cluster1-node1:up'], ['cluster2-node1:down']],
    );
    const c12 = s.connections.find((c) => c.from === 'cluster1' && c.to === 'cluster2');
    assert.equal(c12?.state, 'failing');
    assert.match(c12.reason, /not responding/);
    const c21 = s.connections.find((c) => c.from === 'cluster2' && c.to === 'cluster1');
    assert.equal(c21?.state, 'failing');
    assert.match(c21.reason, /no agent of cluster2 answers/);
    assert.equal(s.services[0]?.name, 'rebel-base');
    assert.equal(s.services[0].kind, 'global');
    assert.deepEqual(
      s.workloads.map((w) => `${w.cluster}/${w.namespace}/${w.name}`),
      ['cluster1/default/x-wing'],
    );
  });

  it('streams new flows and the edges they make as server-sent events', async () => {
    const ac = new AbortController();
    const res = await fetch(`${ui.url}/api/events`, { signal: ac.signal });
    assert.match(res.headers.get('content-type') ?? '', /text\/event-stream/);
    const reader = res.body?.getReader();
    assert.ok(reader !== undefined, 'a body');
    let text = '';
    const until = async (re: RegExp): Promise<void> => {
      const deadline = Date.now() + 10_000;
      while (!re.test(text)) {
        assert.ok(Date.now() < deadline, `no ${String(re)} in the stream:\n${text.slice(-2000)}`);
        const chunk = (await reader.read()) as { value?: Uint8Array; done: boolean };
        if (chunk.done || chunk.value === undefined) break;
        text += Buffer.from(chunk.value).toString('utf8');
      }
    };
    await until(/^event: snapshot\ndata: \{/m);
    flows.push({
      seq: 1,
      time: new Date().toISOString(),
      node: 'cluster1-node1',
      verdict: 'DROPPED',
      dropReason: 'POLICY_DENY',
      protocol: 'TCP',
      direction: 'egress',
      source: {
        ip: '127.1.1.2',
        port: 4000,
        cluster: 'cluster1',
        namespace: 'default',
        pod: 'x-wing-5fc4c95698-gi2k6',
      },
      destination: { ip: '127.1.128.3', port: 80 },
      service: { namespace: 'default', name: 'rebel-base' },
      backend: {
        ip: '127.2.1.1',
        port: 80,
        cluster: 'cluster2',
        namespace: 'default',
        pod: 'rebel-base-79bf5f7b96-eplx3',
      },
    });
    await until(/event: flows\ndata: \[\{"seq":1,/);
    await until(/"verdict":"dropped"/);
    ac.abort();
    await reader.cancel().catch(() => undefined);
    const recent = (await (await fetch(`${ui.url}/api/flows?limit=5`)).json()) as { id: string }[];
    assert.deepEqual(
      recent.map((f) => f.id),
      ['cluster1/cluster1-node1#1'],
    );
  });

  it("lists the policies selecting a workload from its endpoint's computed policy", async () => {
    const res = await fetch(
      `${ui.url}/api/workload?cluster=cluster1&namespace=default&name=x-wing`,
    );
    assert.equal(res.status, 200);
    assert.deepEqual(await res.json(), {
      pod: 'cluster1/default/x-wing-5fc4c95698-gi2k6',
      endpoint: 7,
      ingress: { enforced: false, defaultDeny: false, policies: [] },
      egress: {
        enforced: true,
        defaultDeny: true,
        policies: [
          { kind: 'CiliumNetworkPolicy', namespace: 'default', name: 'deny', actions: ['deny'] },
        ],
      },
    });
  });

  it('refuses bad trace requests with a one-line error and a stable code', async () => {
    const post = async (
      body: string,
    ): Promise<{ status: number; error: { code: string; message: string } }> => {
      const res = await fetch(`${ui.url}/api/trace`, { method: 'POST', body });
      return {
        status: res.status,
        ...((await res.json()) as { error: { code: string; message: string } }),
      };
    };
    const notJson = await post('{');
    assert.equal(notJson.status, 400);
    assert.equal(notJson.error.code, 'ERR_INVALID_ARGUMENT');
    const missing = await post('{"src":"cluster1/default/x-wing"}');
    assert.equal(missing.status, 400);
    assert.match(missing.error.message, /expected \{"src"/);
    const unknown = await post(
      JSON.stringify({
        src: `cluster1/default/${'y'.repeat(200)}`,
        dst: 'cluster1/default/x-wing',
        dport: '80',
      }),
    );
    assert.equal(unknown.status, 404);
    assert.equal(unknown.error.code, 'ERR_KEY_NOT_FOUND');
    assert.ok(unknown.error.message.length < 160, `cut to ~80 chars: ${unknown.error.message}`);
    const shape = await post(
      JSON.stringify({ src: 'x-wing', dst: 'cluster1/default/x-wing', dport: '80' }),
    );
    assert.equal(shape.status, 400);
    assert.match(shape.error.message, /expected CLUSTER\/NAMESPACE\/WORKLOAD/);
    assert.equal((await fetch(`${ui.url}/api/trace`)).status, 405);
  });

  it('says no mesh runs when mesh.json is gone', async () => {
    const empty = await mkdtemp(join(tmpdir(), 'cm-ui-empty-'));
    const other = await startUiServer({ stateDir: empty, log: silentLogger, statusIntervalMs: 50 });
    try {
      await eventually(async () => {
        const s = (await (await fetch(`${other.url}/api/snapshot`)).json()) as UiSnapshot;
        assert.equal(s.mesh.state, 'absent');
        assert.match(s.mesh.message, /no running mesh/);
      });
    } finally {
      await other.close();
      await rm(empty, { recursive: true, force: true });
    }
  });
});
