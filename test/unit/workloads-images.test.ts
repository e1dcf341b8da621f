import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Pod } from '../../src/registry/objects.js';
import type { RegistryObject } from '../../src/registry/types.js';
import type { Harness } from './workloads-helpers.js';
import { deployment, eventually, podsOf, startRuntime } from './workloads-helpers.js';

// Cluster 211: nodes 127.211.0.{1,2}, pods 127.211.{1,2}.0/24.
const ID = 211;

const running: Harness[] = [];
after(async () => {
  for (const h of running) await h.runtime.stop();
});

async function get(
  ip: string,
  path = '/',
): Promise<{ status: number; text: string; server: string }> {
  const res = await fetch(`http://${ip}${path}`, { signal: AbortSignal.timeout(5_000) });
  return { status: res.status, text: await res.text(), server: res.headers.get('server') ?? '' };
}

function configMap(name: string, data: Record<string, string>): RegistryObject {
  return { apiVersion: 'v1', kind: 'ConfigMap', metadata: { name }, data };
}

function phaseOf(p: Pod): string {
  return `${p.status?.phase ?? '-'}/${p.status?.reason ?? '-'}`;
}

void describe('images of the example manifests', () => {
  it('nginx serves a mounted ConfigMap (waiting for it), follows its changes, and answers 404 like nginx', async () => {
    const h = await startRuntime(ID);
    running.push(h);
    const { registry } = h;
    const base = deployment('rebel-base', 1, {
      image: 'docker.io/nginx:1.15.8',
      volumeMounts: [{ name: 'html', mountPath: '/usr/share/nginx/html/' }],
    }) as RegistryObject & { spec: { template: { spec: Record<string, unknown> } } };
    // The Cilium example's volume: one key of the ConfigMap as index.html.
    base.spec.template.spec.volumes = [
      {
        name: 'html',
        configMap: {
          name: 'rebel-base-response',
          items: [{ key: 'message', path: 'index.html' }],
        },
      },
    ];
    await registry.apply([base]);
    const waiting = await eventually(async () => {
      const [p] = await podsOf(registry, 'rebel-base-');
      assert.ok(p !== undefined, 'a pod');
      assert.equal(p.spec.volumes === undefined, false, 'the pod has the volume');
      assert.equal(phaseOf(p), 'Pending/ContainerCreating');
      return p;
    });
    assert.equal(
      waiting.status?.message,
      'MountVolume.SetUp failed for volume "html" : configmap "rebel-base-response" not found',
    );

    await registry.apply([
      configMap('rebel-base-response', {
        message: '{"Galaxy": "Alderaan", "Cluster": "Cluster-1"}\n',
      }),
    ]);
    const ip = await eventually(async () => {
      const [p] = await podsOf(registry, 'rebel-base-');
      assert.equal(phaseOf(p as Pod), 'Running/-');
      return p?.status?.podIP ?? '';
    });
    const first = await get(ip);
    assert.equal(first.status, 200);
    assert.equal(first.text, '{"Galaxy": "Alderaan", "Cluster": "Cluster-1"}\n');
    assert.equal(first.server, 'nginx/1.15.8');

    // A changed ConfigMap is served without a restart, as a mounted one is updated in place.
    await registry.apply([configMap('rebel-base-response', { message: 'changed\n' })]);
    await eventually(async () => assert.equal((await get(ip)).text, 'changed\n'));

    const missing = await get(ip, '/nope.html');
    assert.equal(missing.status, 404);
    assert.match(missing.text, /<title>404 Not Found<\/title>/);
    assert.match(missing.text, /<center>nginx\/1\.15\.8<\/center>/);
    // Its access log is the pod's log.
    const [p] = await podsOf(registry, 'rebel-base-');
    const logs = h.runtime.logs.read('default', p?.metadata.name ?? '', 'main', undefined);
    assert.match(logs.join(''), /"GET \/nope\.html HTTP\/1\.1" 404 \d+ "-" "[^"]*" "-"\n/);
  });

  it('nginx without a mount shows its welcome page; json-mock answers JSON', async () => {
    const h = running[0] ?? (await startRuntime(ID));
    const { registry } = h;
    await registry.apply([
      deployment('plain', 1, { image: 'nginx' }),
      deployment('x-wing', 1, { image: 'quay.io/cilium/json-mock:v1.3.8' }),
    ]);
    const [plain, xwing] = await eventually(async () => {
      const a = await podsOf(registry, 'plain-');
      const b = await podsOf(registry, 'x-wing-');
      assert.equal(a.map(phaseOf).join(), 'Running/-');
      assert.equal(b.map(phaseOf).join(), 'Running/-');
      return [a[0]?.status?.podIP ?? '', b[0]?.status?.podIP ?? ''];
    });
    const welcome = await get(plain);
    assert.equal(welcome.status, 200);
    assert.match(welcome.text, /<h1>Welcome to nginx!<\/h1>/);
    assert.equal((await get(plain, '/sub/')).status, 403);
    const mock = await get(xwing, '/api');
    assert.equal(mock.status, 200);
    assert.equal((JSON.parse(mock.text) as { path?: string }).path, '/api');
  });
});
