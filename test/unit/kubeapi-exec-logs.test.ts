/**
 * Pod logs: the per-container ring buffer, and the `log` subresource over a real API server
 * (text/plain, tailLines, a missing container, follow streaming until the client leaves).
 */
import assert from 'node:assert/strict';
import { request } from 'node:https';
import { after, before, describe, it } from 'node:test';
import { logSubresource } from '../../src/kubeapi/logs.js';
import { createLocalCa, issueServerTls } from '../../src/kubeapi/self-signed.js';
import { KubeApiServer } from '../../src/kubeapi/server.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { silentLogger } from '../../src/lib/logger.js';
import { podLogSource } from '../../src/podexec/kube.js';
import { Registry } from '../../src/registry/registry.js';
import { PodLogs } from '../../src/workloads/pod-logs.js';
import { eventually } from '../support/eventually.js';

void describe('PodLogs', () => {
  void it('keeps the last lines per container and tails them', () => {
    const logs = new PodLogs(3);
    for (const l of ['a', 'b\n', 'c', 'd']) logs.write('ns', 'p', 'c1', l);
    logs.write('ns', 'p', 'c2', 'other');
    assert.deepEqual(logs.read('ns', 'p', 'c1'), ['b\n', 'c\n', 'd\n']);
    assert.deepEqual(logs.read('ns', 'p', 'c1', 1), ['d\n']);
    assert.deepEqual(logs.read('ns', 'p', 'c1', 0), []);
    assert.deepEqual(logs.read('ns', 'p', 'nope'), []);
    const got: string[] = [];
    const stop = logs.follow('ns', 'p', 'c2', (l) => got.push(l));
    logs.write('ns', 'p', 'c2', 'x');
    stop();
    logs.write('ns', 'p', 'c2', 'y');
    assert.deepEqual(got, ['x\n']);
    logs.drop('ns', 'p');
    assert.deepEqual(logs.read('ns', 'p', 'c1'), []);
  });
});

void describe('pods/log subresource', () => {
  let server: KubeApiServer;
  let ca: string;
  const logs = new PodLogs();

  before(async () => {
    const authority = await createLocalCa('test-ca');
    const tls = await issueServerTls(authority, 'test-kube', '127.0.0.1');
    ca = tls.ca;
    const registry = new Registry(new MemoryBackend(new MemoryStore()));
    await registry.apply([
      {
        apiVersion: 'v1',
        kind: 'Pod',
        metadata: { name: 'web', namespace: 'default' },
        spec: { containers: [{ name: 'main', image: 'clustermesh/echo' }] },
      },
    ]);
    server = new KubeApiServer({ registry, tls, token: 't', host: '127.0.0.1' });
    server.addSubresource(logSubresource(podLogSource({ registry, logs }), silentLogger));
    await server.start();
    logs.write('default', 'web', 'main', 'one');
    logs.write('default', 'web', 'main', 'two');
  });

  after(() => server.stop());

  const get = (
    path: string,
    onData?: (s: string) => void,
  ): { done: Promise<{ code: number; type: string; body: string }>; abort: () => void } => {
    let abort = (): void => undefined;
    const done = new Promise<{ code: number; type: string; body: string }>((resolve, reject) => {
      const req = request(
        `${server.url}${path}`,
        { ca, headers: { authorization: 'Bearer t' } },
        (res) => {
          let body = '';
          res.setEncoding('utf8');
          res.on('data', (d: string) => {
            body += d;
            onData?.(d);
          });
          const finish = (): void =>
            resolve({
              code: res.statusCode ?? 0,
              type: String(res.headers['content-type']),
              body,
            });
          res.on('end', finish);
          res.on('close', finish);
        },
      );
      abort = () => req.destroy();
      req.on('error', reject);
      req.end();
    });
    return { done, abort };
  };

  void it('answers text/plain, tailLines, and Statuses for a missing pod or container', async () => {
    const all = await get('/api/v1/namespaces/default/pods/web/log?container=main').done;
    assert.deepEqual(all, { code: 200, type: 'text/plain', body: 'one\ntwo\n' });
    const tail = await get('/api/v1/namespaces/default/pods/web/log?tailLines=1').done;
    assert.equal(tail.body, 'two\n');
    const pod = await get('/api/v1/namespaces/default/pods/nope/log').done;
    assert.equal(pod.code, 404);
    assert.match(pod.body, /pods \\"nope\\" not found/);
    const container = await get('/api/v1/namespaces/default/pods/web/log?container=x').done;
    assert.equal(container.code, 400);
    const bad = await get('/api/v1/namespaces/default/pods/web/log?tailLines=-1').done;
    assert.equal(bad.code, 400);
  });

  void it('follows: new lines stream until the client leaves', async () => {
    let streamed = '';
    const f = get('/api/v1/namespaces/default/pods/web/log?follow=true&tailLines=0', (d) => {
      streamed += d;
    });
    // The follower is registered once the response head is out.
    await new Promise((r) => setTimeout(r, 200));
    logs.write('default', 'web', 'main', 'three');
    await eventually(() => assert.equal(streamed, 'three\n'), 5000);
    f.abort();
    await f.done.catch(() => undefined);
  });
});
