import assert from 'node:assert/strict';
import { after, describe, it } from 'node:test';
import type { Pod } from '../../src/registry/objects.js';
import type { RegistryObject } from '../../src/registry/types.js';
import { tableCells } from '../../src/kubeapi/tables.js';
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

  it('tcpSocket readiness passes on a listening port; a failing exec liveness probe restarts the container at once', async () => {
    let execs = 0;
    let failed = false;
    const h = await startRuntime(ID + 2, {
      execProbe: (target, command) => {
        execs++;
        assert.equal(target.container.name, 'main');
        // Fails once: the first restart is immediate, and the container stays up after it.
        if (command[0] === 'false' && !failed) {
          failed = true;
          return Promise.resolve(1);
        }
        return Promise.resolve(0);
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

  it('a container its liveness probe keeps killing backs off: CrashLoopBackOff, doubling delays, RESTARTS with the last kill', async () => {
    const h = await startRuntime(ID + 3, {
      execProbe: () => Promise.resolve(1),
      restartBackoff: { initialMs: 2000, maxMs: 4000 },
    });
    running.push(h);
    const { registry } = h;
    await registry.apply([
      deployment('crashing', 1, {
        image: 'clustermesh/echo',
        livenessProbe: { exec: { command: ['false'] }, periodSeconds: 1, failureThreshold: 1 },
      }),
    ]);
    interface Status {
      restartCount: number;
      ready: boolean;
      state: { waiting?: { reason: string; message: string }; running?: unknown };
      lastState?: { terminated?: { exitCode: number; finishedAt: string } };
    }
    const statusOf = async (): Promise<{ pod: Pod; c: Status | undefined }> => {
      const [pod] = await podsOf(registry, 'crashing-');
      if (pod === undefined) throw new Error('no crashing pod yet');
      return { pod, c: (pod.status?.containerStatuses as Status[] | undefined)?.[0] };
    };
    // The first kill restarts at once; the second waits 2 s, in CrashLoopBackOff.
    let backingOff = 0;
    await eventually(async () => {
      const { pod, c } = await statusOf();
      assert.equal(c?.state.waiting?.reason, 'CrashLoopBackOff', JSON.stringify(c));
      assert.match(
        c.state.waiting.message,
        /^back-off 2s restarting failed container=main pod=crashing-[a-z0-9-]+_default\(.+\)$/,
      );
      assert.equal(c.restartCount, 1);
      assert.equal(c.ready, false);
      assert.equal(c.lastState?.terminated?.exitCode, 137);
      assert.equal(readyOf(pod), 'False', 'a container waiting to restart is not ready');
      const cells = tableCells('Pod', pod, new Date());
      assert.equal(cells[2], 'CrashLoopBackOff');
      assert.match(String(cells[3]), /^1 \(\d+s ago\)$/);
      backingOff = Date.now();
    }, 15_000);
    // Then restarted (after the delay), killed again, and backing off twice as long.
    await eventually(async () => {
      const { c } = await statusOf();
      assert.equal(c?.restartCount, 2, JSON.stringify(c));
      assert.match(c.state.waiting?.message ?? '', /^back-off 4s /);
    }, 15_000);
    assert.ok(Date.now() - backingOff >= 1500, 'the second restart waited for its back-off');
  });
});
