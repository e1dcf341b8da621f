import assert from 'node:assert/strict';
import { mkdtemp, rm, writeFile } from 'node:fs/promises';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { after, before, describe, it } from 'node:test';
import { runCli } from '../../src/cli/program.js';

async function cli(args: readonly string[]): Promise<{ code: number; out: string; err: string }> {
  let out = '';
  let err = '';
  const code = await runCli(args, { stdout: (s) => (out += s), stderr: (s) => (err += s) });
  return { code, out, err };
}

describe('clustermesh ui', () => {
  let dir: string;
  const state = (ui?: string): string =>
    JSON.stringify({
      version: 1,
      pid: process.pid,
      startedAt: new Date().toISOString(),
      kvstore: 'memory',
      kvstoremesh: false,
      control: 'http://127.0.0.1:1',
      ...(ui === undefined ? {} : { ui }),
      clusters: [],
    });

  before(async () => {
    dir = await mkdtemp(join(tmpdir(), 'cm-ui-cli-'));
  });
  after(async () => {
    await rm(dir, { recursive: true, force: true });
  });

  it("prints mesh.json's ui address, as text or JSON, without a browser here", async () => {
    await writeFile(join(dir, 'mesh.json'), state('http://127.0.0.1:41234'));
    // No DISPLAY in the test environment: nothing is opened, the address is printed.
    const saved = { display: process.env.DISPLAY, wayland: process.env.WAYLAND_DISPLAY };
    delete process.env.DISPLAY;
    delete process.env.WAYLAND_DISPLAY;
    try {
      assert.deepEqual(await cli(['ui', '--state-dir', dir]), {
        code: 0,
        out: 'http://127.0.0.1:41234/\n',
        err: '',
      });
      assert.deepEqual(await cli(['-o', 'json', 'ui', '--state-dir', dir, '--no-open']), {
        code: 0,
        out: '{"url":"http://127.0.0.1:41234/"}\n',
        err: '',
      });
    } finally {
      if (saved.display !== undefined) process.env.DISPLAY = saved.display;
      if (saved.wayland !== undefined) process.env.WAYLAND_DISPLAY = saved.wayland;
    }
  });

  it('says when no mesh runs, or when the mesh serves no view', async () => {
    const none = await cli(['ui', '--state-dir', join(dir, 'nowhere')]);
    assert.equal(none.code, 1);
    assert.match(none.err, /^clustermesh: no running mesh: .*mesh\.json not found/);
    assert.equal(none.err.split('\n').length, 2, 'one line');
    await writeFile(join(dir, 'mesh.json'), state());
    const old = await cli(['ui', '--state-dir', dir]);
    assert.equal(old.code, 1);
    assert.match(old.err, /serves no browser view .*clustermesh ui --serve/);
  });
});
