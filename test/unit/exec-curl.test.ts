/** exec's curl: its flags, its exit codes, and a request that really leaves from the pod IP. */
import assert from 'node:assert/strict';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { after, before, describe, it } from 'node:test';
import {
  CurlError,
  CurlExit,
  CurlUsageError,
  curlFrom,
  parseCurlArgs,
} from '../../src/exec/curl.js';

const SERVER_IP = '127.207.1.1';
const POD_IP = '127.207.2.7';

void describe("exec's curl", () => {
  let server: Server;
  let port = 0;
  const seen: { peer: string | undefined; host: string | undefined; ctype: string | undefined }[] =
    [];

  before(async () => {
    server = createServer((req, res) => {
      seen.push({
        peer: req.socket.remoteAddress,
        host: req.headers.host,
        ctype: req.headers['content-type'],
      });
      res.writeHead(201, { 'x-test': 'yes' }).end('hello\n');
    });
    await new Promise<void>((resolve) => server.listen(0, SERVER_IP, resolve));
    port = (server.address() as AddressInfo).port;
  });

  after(async () => {
    server.closeAllConnections();
    await new Promise<void>((resolve) => server.close(() => resolve()));
  });

  it('parses the flags the walkthroughs use, combined or not', () => {
    const a = parseCurlArgs(['curl', '-sS', '-i', '-m', '2.5', '-H', 'X-A: b', 'rebel-base']);
    assert.equal(a.url, 'rebel-base');
    assert.deepEqual([a.silent, a.showError, a.include, a.verbose], [true, true, true, false]);
    assert.equal(a.maxTimeMs, 2500);
    assert.deepEqual(a.headers, [['X-A', 'b']]);
    for (const bad of [
      ['wget', 'x'],
      ['curl'],
      ['curl', '--frobnicate', 'x'],
      ['curl', '-m'],
      ['curl', '-m', '0', 'x'],
      ['curl', 'a', 'b'],
      ['curl', '-H', 'nocolon', 'x'],
    ]) {
      assert.throws(() => parseCurlArgs(bad), CurlUsageError, bad.join(' '));
    }
  });

  it('sends from the pod IP, prints the reply, and lets -H override the defaults', async () => {
    let out = '';
    await curlFrom(
      parseCurlArgs([
        'curl',
        '-i',
        '-d',
        'x=1',
        '-H',
        'Content-Type: text/plain',
        '-H',
        'Host: rebel-base',
        `http://${SERVER_IP}:${port}/`,
      ]),
      { sourceIP: POD_IP, namespace: 'default', dns: '127.207.0.1:53' },
      { stdout: (s) => (out += s), stderr: () => undefined },
    );
    assert.match(out, /^HTTP\/1\.1 201 Created\r\n/);
    assert.match(out, /x-test: yes\r\n/);
    assert.match(out, /hello\n$/);
    assert.deepEqual(seen.at(-1), { peer: POD_IP, host: 'rebel-base', ctype: 'text/plain' });
  });

  it("fails with curl's exit codes", async () => {
    const code = async (argv: string[]): Promise<number> => {
      try {
        await curlFrom(
          parseCurlArgs(['curl', '-s', '-m', '1', ...argv]),
          // Nothing answers DNS there: names fail to resolve.
          { sourceIP: POD_IP, namespace: 'default', dns: '127.207.0.1:9' },
          { stdout: () => undefined, stderr: () => undefined },
        );
        return 0;
      } catch (err) {
        assert.ok(err instanceof CurlError, `a CurlError, got ${String(err)}`);
        return err.exitCode;
      }
    };
    assert.equal(await code([`http://${SERVER_IP}:1/`]), CurlExit.CouldNotConnect);
    assert.equal(await code(['https://x/']), CurlExit.UnsupportedProtocol);
    assert.equal(await code(['nothing-here']), CurlExit.CouldNotResolve);
  });
});
