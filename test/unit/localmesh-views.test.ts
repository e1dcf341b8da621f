/**
 * The agent views without -H: they ask an agent of the running local mesh, found through
 * its mesh.json (here a hand-written one naming two small HTTP servers that stand in for
 * agents), and say how to fix things when no mesh runs or --node names no agent.
 */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { mkdir, mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, beforeEach, describe, it } from 'node:test';
import { runCli } from '../../src/cli/program.js';
import type { MeshState } from '../../src/localmesh/mesh-state.js';

interface Run {
  readonly code: number;
  readonly stdout: string;
  readonly stderr: string;
}

async function run(...argv: string[]): Promise<Run> {
  let stdout = '';
  let stderr = '';
  const code = await runCli(argv, {
    stdout: (s) => (stdout += s),
    stderr: (s) => (stderr += s),
  });
  return { code, stdout, stderr };
}

/** An HTTP server answering like an agent of `cluster`/`node`; records the paths asked. */
class FakeAgent {
  readonly paths: string[] = [];
  private readonly server: Server;

  constructor(
    readonly cluster: string,
    readonly id: number,
    readonly node: string,
  ) {
    this.server = createServer((req, res) => {
      const path = req.url ?? '';
      this.paths.push(path);
      const body =
        path === '/v1/status'
          ? {
              cluster: { name: cluster, id },
              node,
              kvstore: 'memory',
              clustermesh: { clusters: [] },
            }
          : path === '/v1/nodes'
            ? [
                {
                  Name: node,
                  Cluster: cluster,
                  IPAddresses: [{ Type: 'InternalIP', IP: `127.${id}.0.1` }],
                  IPv4AllocCIDR: `127.${id}.1.0/24`,
                  IPv6AllocCIDR: null,
                  Source: 'local',
                },
              ]
            : undefined;
      res.writeHead(body === undefined ? 404 : 200, { 'content-type': 'application/json' });
      res.end(body === undefined ? 'not found\n' : JSON.stringify(body));
    });
  }

  async listen(): Promise<void> {
    await new Promise<void>((resolve) => this.server.listen(0, '127.0.0.1', resolve));
  }

  get url(): string {
    return `http://127.0.0.1:${(this.server.address() as AddressInfo).port}`;
  }

  close(): Promise<void> {
    return new Promise((resolve) => this.server.close(() => resolve()));
  }
}

void describe('agent views of the running local mesh', () => {
  let dir: string;
  let stateDir: string;
  const agents = [
    new FakeAgent('cluster1', 1, 'cluster1-node1'),
    new FakeAgent('cluster1', 1, 'cluster1-node2'),
    new FakeAgent('cluster2', 2, 'cluster2-node1'),
  ];
  const savedHost = process.env.CLUSTERMESH_HOST;

  before(async () => {
    // The views read -H from the environment too; these cases are about its absence.
    delete process.env.CLUSTERMESH_HOST;
    dir = await mkdtemp(join(tmpdir(), 'cm-views-'));
    stateDir = join(dir, 'state');
    await Promise.all(agents.map((a) => a.listen()));
    const state: MeshState = {
      version: 1,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      kvstore: 'memory',
      kvstoremesh: false,
      control: 'http://127.0.0.1:9',
      clusters: [1, 2].map((id) => ({
        name: `cluster${id}`,
        id,
        kvstore: `memory://cluster${id}`,
        dns: `127.${id}.128.10:53`,
        podCIDR: `127.${id}.0.0/17`,
        serviceCIDR: `127.${id}.128.0/17`,
        agents: agents
          .filter((a) => a.id === id)
          .map((a, i) => ({
            node: a.node,
            ip: `127.${id}.0.${i + 1}`,
            podCIDR: `127.${id}.${i + 1}.0/24`,
            api: a.url,
          })),
      })),
    };
    await mkdir(stateDir);
    await writeFile(join(stateDir, 'mesh.json'), JSON.stringify(state));
  });

  beforeEach(() => {
    for (const a of agents) a.paths.length = 0;
  });

  after(async () => {
    if (savedHost === undefined) delete process.env.CLUSTERMESH_HOST;
    else process.env.CLUSTERMESH_HOST = savedHost;
    await Promise.all(agents.map((a) => a.close()));
    await rm(dir, { recursive: true, force: true });
  });

  it('status without -H asks the first agent of mesh.json', async () => {
    const r = await run('status', '--state-dir', stateDir);
    assert.equal(r.stderr, '');
    assert.equal(r.code, 0);
    assert.match(r.stdout, /^Cluster:\s+cluster1 \(1\)\nNode:\s+cluster1-node1\n/);
    assert.deepEqual(
      agents.map((a) => a.paths),
      [['/v1/status'], [], []],
    );
  });

  it('--node CLUSTER/NODE (or the node name alone) picks another agent', async () => {
    const r = await run(
      'node',
      'list',
      '--state-dir',
      stateDir,
      '--node',
      'cluster2/cluster2-node1',
    );
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^cluster2\/cluster2-node1\s+127\.2\.0\.1\s+127\.2\.1\.0\/24/m);
    const s = await run(
      'status',
      '--state-dir',
      stateDir,
      '--node',
      'cluster1-node2',
      '-o',
      'json',
    );
    assert.equal(s.code, 0, s.stderr);
    assert.deepEqual(JSON.parse(s.stdout), { clusters: [] });
    assert.deepEqual(
      agents.map((a) => a.paths),
      [[], ['/v1/status'], ['/v1/nodes']],
    );
  });

  it('an unknown --node is one line listing the valid nodes', async () => {
    const r = await run('status', '--state-dir', stateDir, '--node', 'cluster3/cluster3-node1');
    assert.equal(r.code, 1);
    assert.equal(
      r.stderr,
      'clustermesh: node "cluster3/cluster3-node1" is not part of the running mesh ' +
        '(nodes: cluster1/cluster1-node1, cluster1/cluster1-node2, cluster2/cluster2-node1)\n',
    );
    assert.deepEqual(
      agents.map((a) => a.paths),
      [[], [], []],
    );
  });

  it('-H wins over mesh.json; -H and --node together are a usage error', async () => {
    const second = agents[1];
    assert.ok(second !== undefined, 'second !== undefined');
    const r = await run('-H', second.url, 'status', '--state-dir', stateDir);
    assert.equal(r.code, 0, r.stderr);
    assert.match(r.stdout, /^Node:\s+cluster1-node2$/m);
    const both = await run('-H', second.url, 'status', '--state-dir', stateDir, '--node', 'x');
    assert.equal(both.code, 2);
    assert.equal(both.stderr, 'error: give either -H or --node, not both\n');
  });

  it('$CLUSTERMESH_HOST stands for -H but yields to --node', async () => {
    const [first, second, third] = agents;
    assert.ok(
      first !== undefined && second !== undefined && third !== undefined,
      'first !== undefined && second !== undefined && third !== undefined',
    );
    process.env.CLUSTERMESH_HOST = second.url;
    try {
      const env = await run('status', '--state-dir', stateDir);
      assert.equal(env.code, 0, env.stderr);
      const node = await run(
        'status',
        '--state-dir',
        stateDir,
        '--node',
        'cluster2/cluster2-node1',
      );
      assert.equal(node.code, 0, node.stderr);
    } finally {
      delete process.env.CLUSTERMESH_HOST;
    }
    assert.deepEqual(
      [first.paths, second.paths, third.paths],
      [[], ['/v1/status'], ['/v1/status']],
    );
  });

  it('without a mesh and without -H: one line saying how to fix it', async () => {
    const none = join(dir, 'nothing-here');
    for (const argv of [
      ['status'],
      ['node', 'list'],
      ['identity', 'list'],
      ['ipcache', 'list'],
      ['service', 'list'],
      ['lb', 'list'],
    ]) {
      const r = await run(...argv, '--state-dir', none);
      assert.equal(r.code, 1, argv.join(' '));
      assert.equal(r.stdout, '');
      assert.equal(
        r.stderr,
        `clustermesh: no agent address: no local mesh runs here (${join(none, 'mesh.json')} not found); ` +
          'start one with "clustermesh up", or pass -H URL (or set CLUSTERMESH_HOST)\n',
        argv.join(' '),
      );
    }
  });
});
