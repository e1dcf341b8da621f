/**
 * The browser view of `clustermesh up --clusters 2 --example rebel-base` (etcd), in headless
 * Chromium (Debian's, driven by playwright-core): the page shows both clusters connected and
 * rebel-base with four backends; requests from x-wing draw edges to rebel-base in both
 * clusters; a deny policy turns them dropped; a frozen cluster8 etcd turns its connection
 * failing within the detection time. The mesh runs on IDs 7–8 (cluster7, cluster8) under
 * that block's lock (test/support/up-lock.ts), beside the files on IDs 1–3.
 */
import assert from 'node:assert/strict';
import { execFile } from 'node:child_process';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { fileURLToPath } from 'node:url';
import { promisify } from 'node:util';
import type { Browser, Page } from 'playwright-core';
import { launchChromium } from '../support/chromium.js';
import { readMeshState, type MeshState } from '../../src/localmesh/mesh-state.js';
import { eventually } from '../support/eventually.js';
import { acquireUpLock, releaseUpLock } from '../support/up-lock.js';
import { UpProcess } from '../support/up-process.js';

const run = promisify(execFile);
const BIN = fileURLToPath(new URL('../../bin/clustermesh', import.meta.url));

const DENY = `apiVersion: cilium.io/v2
kind: CiliumNetworkPolicy
metadata:
  name: deny-rebel-base
  namespace: default
spec:
  endpointSelector:
    matchLabels:
      name: x-wing
  egressDeny:
  - toEndpoints:
    - matchLabels:
        name: rebel-base
        io.cilium.k8s.policy.cluster: cluster7
    - matchLabels:
        name: rebel-base
        io.cilium.k8s.policy.cluster: cluster8
`;

before(async () => {
  await acquireUpLock(1_800_000, 7);
});
after(async () => {
  await releaseUpLock(7);
});

describe('the browser view of clustermesh up', { timeout: 240_000 }, () => {
  let dir: string;
  let up: UpProcess;
  let state: MeshState;
  let browser: Browser;
  let page: Page;
  let clusterIP = '';

  const stateDir = (): string => join(dir, '.clustermesh');
  const cli = async (args: readonly string[]): Promise<string> =>
    (
      await run(BIN, [...args], {
        env: { ...process.env, LOG_LEVEL: 'silent' },
        cwd: dir,
        timeout: 30_000,
      })
    ).stdout;
  /** A request from cluster7's x-wing; a dropped one fails (curl exit 28), which is expected. */
  const curl = async (target: string): Promise<void> => {
    await cli(['exec', 'cluster7/x-wing', '--', 'curl', '-s', '-m', '1', target]).catch(
      () => undefined,
    );
  };
  const edge = (to: string): string =>
    `[data-testid="edge"][data-from="cluster7/default/x-wing"][data-to="${to}"]`;

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-ui-'));
    up = new UpProcess(dir);
    up.start([
      '--clusters',
      '2',
      '--first-cluster-id',
      '7',
      '--example',
      'rebel-base',
      '--kvstore',
      'etcd',
    ]);
    state = await eventually(() => readMeshState(stateDir()), {
      timeoutMs: 90_000,
      intervalMs: 200,
      message: () => `mesh.json never appeared; up printed:\n${up.log}`,
    });
    browser = await launchChromium();
    page = await browser.newPage({ viewport: { width: 1280, height: 1000 } });
  });

  after(async () => {
    await browser.close().catch(() => undefined);
    await up.stop();
    await rm(dir, { recursive: true, force: true });
  });

  it('is recorded in mesh.json, printed by up and by clustermesh ui', async () => {
    assert.match(state.ui ?? '', /^http:\/\/127\.0\.0\.1:\d+$/, 'mesh.json records the UI');
    await eventually(() => {
      assert.ok(up.log.includes(`ui: ${state.ui ?? ''}/`), `up prints the address:\n${up.log}`);
    });
    assert.equal(await cli(['ui', '--no-open']), `${state.ui ?? ''}/\n`);
  });

  it('shows two clusters connected and rebel-base with four backends', async () => {
    await page.goto(`${state.ui ?? ''}/`);
    for (const [from, to] of [
      ['cluster7', 'cluster8'],
      ['cluster8', 'cluster7'],
    ] as const) {
      const row = page.locator(`[data-testid="connection-${from}-${to}"]`);
      await row.and(page.locator('[data-state="ready"]')).waitFor({ timeout: 20_000 });
      assert.match(await row.innerText(), /ready\s+2\/2/, 'both agents see the remote ready');
      assert.match(await row.innerText(), /synced/, 'the remote is synced');
    }
    assert.equal(await page.locator('[data-testid="cluster-cluster7"] text').count(), 3);
    const service = page.locator('[data-testid="service-default/rebel-base"]');
    await service.and(page.locator('[data-backends="4"]')).waitFor({ timeout: 20_000 });
    assert.match(await service.innerText(), /127\.7\.128\.\d+:80\/TCP/, 'cluster7 frontend');
    // The same frontend the CLI lists.
    const services = JSON.parse(await cli(['-o', 'json', 'service', 'list'])) as {
      frontend: string;
      backends: unknown[];
    }[];
    const rb = services.find((s) => s.backends.length === 4);
    assert.ok(rb !== undefined, 'service list shows rebel-base with four backends');
    clusterIP = rb.frontend.split(':')[0] ?? '';
    assert.match(await service.innerText(), new RegExp(clusterIP.replace(/\./g, '\\.')));
  });

  it('draws an edge from x-wing to rebel-base in both clusters after requests', async () => {
    const t0 = Date.now();
    for (let i = 0; i < 40; i++) {
      await curl('rebel-base');
      const both = await Promise.all(
        ['cluster7', 'cluster8'].map((c) => page.locator(edge(`${c}/default/rebel-base`)).count()),
      );
      if (both.every((n) => n > 0)) break;
    }
    for (const c of ['cluster7', 'cluster8']) {
      const e = page.locator(edge(`${c}/default/rebel-base`));
      await e.waitFor({ timeout: 5_000 });
      assert.equal(await e.getAttribute('data-verdict'), 'forwarded');
      assert.match((await e.getAttribute('aria-label')) ?? '', /forwarded, [\d.]+\/s/);
    }
    // Keyboard: Enter on a focused edge opens its recent flows.
    await page.locator(edge('cluster7/default/rebel-base')).focus();
    await page.keyboard.press('Enter');
    const panel = page.locator('[data-testid="edge-flows"]');
    await panel.waitFor({ timeout: 5_000 });
    assert.match(await panel.innerText(), /x-wing.*rebel-base.*FORWARDED/s);
    // The flows table filters as observe does.
    await page.locator('[data-testid="filter-verdict"]').selectOption('DROPPED');
    assert.equal(await page.locator('[data-testid="flow"][data-verdict="FORWARDED"]').count(), 0);
    await page.locator('[data-testid="filter-verdict"]').selectOption('FORWARDED');
    await page.locator('[data-testid="flow"]').first().waitFor({ timeout: 5_000 });
    assert.ok(Date.now() - t0 < 60_000, 'edges within a minute of requests');
  });

  it('turns the edges dropped after a deny policy, and traces it', async () => {
    const file = join(dir, 'deny.yaml');
    await writeFile(file, DENY);
    await cli(['apply', '--cluster', 'cluster7', '-f', file]);
    const dropped = async (): Promise<boolean> => {
      const v = await Promise.all(
        ['cluster7', 'cluster8'].map((c) =>
          page.locator(edge(`${c}/default/rebel-base`)).getAttribute('data-verdict'),
        ),
      );
      return v.every((x) => x === 'dropped');
    };
    // The ClusterIP itself: the deny-only policy puts x-wing's egress in default deny, DNS too.
    for (let i = 0; i < 30 && !(await dropped()); i++) await curl(`http://${clusterIP}/`);
    await eventually(
      async () => assert.ok(await dropped(), 'both edges show policy-dropped'),
      5_000,
    );
    const label =
      (await page.locator(edge('cluster7/default/rebel-base')).getAttribute('aria-label')) ?? '';
    assert.match(label, /policy-dropped, [\d.]+\/s/);
    // The policy panel: the trace form runs policy trace through the server.
    await page.locator('[data-testid="trace-src"]').selectOption('cluster7/default/x-wing');
    await page.locator('[data-testid="trace-dst"]').selectOption('cluster8/default/rebel-base');
    await page.locator('[data-testid="trace-port"]').fill('80/TCP');
    await page.locator('form.trace button[type="submit"]').click();
    const result = page.locator('[data-testid="trace-result"]');
    await result.waitFor({ timeout: 20_000 });
    assert.equal(await result.getAttribute('data-verdict'), 'DENIED');
    assert.match(await result.innerText(), /deny-rebel-base/);
  });

  it("turns cluster8's connection failing within the detection time when its etcd stops", async () => {
    const fault = async (action: string): Promise<void> => {
      const res = await fetch(`${state.control}/v1/fault?cluster=cluster8&action=${action}`, {
        method: 'POST',
      });
      assert.equal(res.status, 200, await res.text());
    };
    const row = page.locator('[data-testid="connection-cluster7-cluster8"]');
    assert.equal(await row.getAttribute('data-state'), 'ready');
    const t0 = Date.now();
    await fault('freeze-kvstore');
    try {
      // Detection is 4 s without an answer (docs/architecture.md); the page polls every 0.5 s.
      await row.and(page.locator('[data-state="failing"]')).waitFor({ timeout: 10_000 });
      const took = Date.now() - t0;
      assert.ok(took < 10_000, `failing after ${took} ms`);
      assert.notEqual((await row.locator('.reason').innerText()).trim(), '', 'a reason is shown');
      assert.equal(
        await page.locator('[data-testid="pair-cluster7-cluster8"]').getAttribute('data-state'),
        'failing',
      );
    } finally {
      await fault('thaw-kvstore');
    }
    await row.and(page.locator('[data-state="ready"]')).waitFor({ timeout: 30_000 });
  });
});
