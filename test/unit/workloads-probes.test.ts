import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Pod } from '../../src/registry/objects.js';
import type { RegistryObject } from '../../src/registry/types.js';
import type { Harness } from './workloads-helpers.js';
import { deployment, eventually, podsOf, service, startRuntime } from './workloads-helpers.js';

// Cluster 212: nodes 127.212.0.{1,2}, pods 127.212.{1,2}.0/24, services 127.212.128.0/17.
const ID = 212;

const running: Harness[] = [];
after(async () => {
  for (const h of running) await h.runtime.stop();
});

function withTemplate(d: RegistryObject, spec: Record<string, unknown>): RegistryObject {
  const t = d as RegistryObject & { spec: { template: { spec: Record<string, unknown> } } };
  Object.assign(t.spec.template.spec, spec);
  return d;
}

function readyOf(p: Pod | undefined): string {
  return p?.status?.conditions?.find((c) => c.type === 'Ready')?.status ?? '-';
}

async function sliceReady(h: Harness, svc: string): Promise<boolean[]> {
  const slices = await h.registry.list('EndpointSlice', 'default');
  return slices
    .filter((s) => s.metadata.labels?.['kubernetes.io/service-name'] === svc)
    .flatMap((s) => s.endpoints.map((e) => e.conditions?.ready === true));
}

void describe('probes', () => {
  it('an httpGet readiness probe decides Ready and whether the pod is a ready backend, both ways', async () => {
    const h = await startRuntime(ID);
    running.push(h);
    const { registry } = h;
    await registry.apply([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'html' },
        data: { 'index.html': 'hi\n' },
      },
      withTemplate(
        deployment('web', 1, {
          image: 'nginx:1.15.8',
          volumeMounts: [{ name: 'html', mountPath: '/usr/share/nginx/html' }],
          readinessProbe: {
            httpGet: { path: '/healthz', port: 80 },
            periodSeconds: 1,
            failureThreshold: 1,
          },
        }),
        { volumes: [{ name: 'html', configMap: { name: 'html' } }] },
      ),
      service('web', { selector: { app: 'web' }, ports: [{ port: 80 }] }),
    ]);
    // Running, but /healthz answers 404: not Ready, and its slice endpoint is not ready.
    await eventually(async () => {
      const [p] = await podsOf(registry, 'web-');
      assert.equal(p?.status?.phase, 'Running');
      assert.equal(readyOf(p), 'False');
      assert.deepEqual(await sliceReady(h, 'web'), [false]);
    });
    await new Promise((r) => setTimeout(r, 1_500));
    assert.equal(readyOf((await podsOf(registry, 'web-'))[0]), 'False', 'still failing');

    await registry.apply([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'html' },
        data: { 'index.html': 'hi\n', healthz: 'ok\n' },
      },
    ]);
    await eventually(async () => {
      assert.equal(readyOf((await podsOf(registry, 'web-'))[0]), 'True');
      assert.deepEqual(await sliceReady(h, 'web'), [true]);
    });

    await registry.apply([
      {
        apiVersion: 'v1',
        kind: 'ConfigMap',
        metadata: { name: 'html' },
        data: { 'index.html': 'hi\n' },
      },
    ]);
    await eventually(async () => {
      assert.equal(readyOf((await podsOf(registry, 'web-'))[0]), 'False');
      assert.deepEqual(await sliceReady(h, 'web'), [false]);
    });
  });

  it('tcpSocket readiness passes on a listening port; a failing exec liveness probe restarts the container', async () => {
    let execs = 0;
    const h = await startRuntime(ID + 2, {
      execProbe: (target, command) => {
        execs++;
        assert.equal(target.container.name, 'main');
        return Promise.resolve(command[0] === 'false' ? 1 : 0);
      },
    });
    running.push(h);
    const { registry } = h;
    await registry.apply([
      deployment('tcp', 1, {
        image: 'clustermesh/echo',
        readinessProbe: { tcpSocket: { port: 80 }, periodSeconds: 1 },
      }),
      deployment('closed', 1, {
        image: 'clustermesh/idle',
        readinessProbe: { tcpSocket: { port: 80 }, periodSeconds: 1, timeoutSeconds: 1 },
      }),
      deployment('dying', 1, {
        image: 'clustermesh/echo',
        livenessProbe: { exec: { command: ['false'] }, periodSeconds: 1, failureThreshold: 1 },
      }),
    ]);
    await eventually(async () => {
      assert.equal(readyOf((await podsOf(registry, 'tcp-'))[0]), 'True');
      assert.equal(readyOf((await podsOf(registry, 'closed-'))[0]), 'False');
      const [dying] = await podsOf(registry, 'dying-');
      const statuses = dying?.status?.containerStatuses as { restartCount: number }[] | undefined;
      assert.ok((statuses?.[0]?.restartCount ?? 0) >= 1, `restarted: ${JSON.stringify(statuses)}`);
      // Liveness does not decide readiness.
      assert.equal(readyOf(dying), 'True');
    }, 15_000);
    assert.ok(execs >= 1, 'the exec probe ran through the runner');
  });
});
