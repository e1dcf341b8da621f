/**
 * The exec subresource's WebSocket protocol against a real API server and the real `ws`
 * client: channel framing, stdin and its v5 half-close, the Status on channel 3, TTY
 * output, ping/pong, protocol negotiation; and the pod command emulation's exit codes.
 */
import assert from 'node:assert/strict';
import { after, before, describe, it } from 'node:test';
import { WebSocket } from 'ws';
import { Channel, exitStatus, frame, pickProtocol, unframe } from '../../src/kubeapi/channels.js';
import { execSubresource, type ExecRequest } from '../../src/kubeapi/exec.js';
import { createLocalCa, issueServerTls } from '../../src/kubeapi/self-signed.js';
import { KubeApiServer } from '../../src/kubeapi/server.js';
import { ApiError } from '../../src/kubeapi/status.js';
import { MemoryBackend } from '../../src/kvstore/memory.js';
import { MemoryStore } from '../../src/kvstore/memory-store.js';
import { silentLogger } from '../../src/lib/logger.js';
import { runPodCommand, type PodExecContext } from '../../src/podexec/commands.js';
import { Registry } from '../../src/registry/registry.js';

void describe('exec channel framing', () => {
  void it('prefixes the channel byte and strips it back', () => {
    const f = frame(Channel.Stderr, 'oops');
    assert.deepEqual([...f], [2, ...Buffer.from('oops')]);
    const back = unframe(f);
    assert.equal(back?.channel, 2);
    assert.equal(back.data.toString(), 'oops');
    assert.equal(unframe(Buffer.alloc(0)), undefined);
    assert.deepEqual([...frame(Channel.Close, Buffer.from([0]))], [255, 0]);
  });

  void it('prefers v5, accepts v4, refuses the rest', () => {
    assert.equal(pickProtocol(['v4.channel.k8s.io', ' v5.channel.k8s.io']), 'v5.channel.k8s.io');
    assert.equal(pickProtocol(['v4.channel.k8s.io']), 'v4.channel.k8s.io');
    assert.equal(pickProtocol(['channel.k8s.io', 'v3.channel.k8s.io']), undefined);
  });

  void it('words the exit status as kubectl reads it', () => {
    assert.deepEqual(exitStatus(0), { metadata: {}, status: 'Success' });
    const s = exitStatus(7) as { reason: string; details: { causes: unknown[] } };
    assert.equal(s.reason, 'NonZeroExitCode');
    assert.deepEqual(s.details.causes, [{ reason: 'ExitCode', message: '7' }]);
  });
});

interface Session {
  frames: { channel: number; data: string }[];
  closeCode: number;
}

void describe('exec over WebSocket', () => {
  let server: KubeApiServer;
  let ca: string;
  const seen: ExecRequest[] = [];

  before(async () => {
    const authority = await createLocalCa('test-ca');
    const tls = await issueServerTls(authority, 'test-kube', '127.0.0.1');
    ca = tls.ca;
    server = new KubeApiServer({
      registry: new Registry(new MemoryBackend(new MemoryStore())),
      tls,
      token: 'secret',
      host: '127.0.0.1',
    });
    server.addSubresource(
      execSubresource((req) => {
        seen.push(req);
        if (req.pod === 'missing') {
          return Promise.reject(new ApiError(404, 'NotFound', 'pods "missing" not found'));
        }
        return Promise.resolve(async (io) => {
          const [cmd, arg] = req.command;
          if (cmd === 'cat') {
            for await (const chunk of io.stdin ?? []) io.stdout(chunk);
            return 0;
          }
          if (cmd === 'fail') {
            io.stderr('bad\n');
            return Number(arg);
          }
          if (cmd === 'sleep') {
            await new Promise((r) => setTimeout(r, Number(arg)));
            return 0;
          }
          return 127;
        });
      }, silentLogger),
    );
    await server.start();
  });

  after(() => server.stop());

  const url = (pod: string, query: string): string =>
    `${server.url.replace('https', 'wss')}/api/v1/namespaces/default/pods/${pod}/exec?${query}`;

  const open = (pod: string, query: string, protocol = 'v5.channel.k8s.io'): WebSocket =>
    new WebSocket(url(pod, query), protocol, { ca, headers: { authorization: 'Bearer secret' } });

  const collect = (ws: WebSocket): Promise<Session> =>
    new Promise((resolve, reject) => {
      const frames: Session['frames'] = [];
      ws.on('message', (data: Buffer, isBinary: boolean) => {
        assert.ok(isBinary, 'the server sends binary frames only');
        const f = unframe(data);
        if (f !== undefined) frames.push({ channel: f.channel, data: f.data.toString() });
      });
      ws.on('close', (code) => resolve({ frames, closeCode: code }));
      ws.on('error', reject);
    });

  void it('passes stdin until the v5 close signal, then sends Success on channel 3 and closes 1000', async () => {
    const ws = open('p1', 'command=cat&stdin=true&stdout=true&stderr=true&container=c');
    const done = collect(ws);
    await new Promise((r) => ws.once('open', r));
    assert.equal(ws.protocol, 'v5.channel.k8s.io');
    ws.send(frame(Channel.Stdin, 'hello '));
    ws.send(frame(Channel.Stdin, 'world'));
    ws.send(frame(Channel.Close, Buffer.from([Channel.Stdin])));
    const s = await done;
    assert.equal(s.closeCode, 1000);
    const out = s.frames
      .filter((f) => f.channel === 1)
      .map((f) => f.data)
      .join('');
    assert.equal(out, 'hello world');
    const status = s.frames.filter((f) => f.channel === 3);
    assert.equal(status.length, 1);
    assert.deepEqual(JSON.parse(status[0]?.data ?? ''), { metadata: {}, status: 'Success' });
    const req = seen.at(-1);
    assert.deepEqual(req?.command, ['cat']);
    assert.equal(req.container, 'c');
    assert.equal(req.stdin, true);
  });

  void it('reports a non-zero exit code with its cause; stderr on channel 2, or 1 with a tty', async () => {
    const plain = await collect(open('p1', 'command=fail&command=7&stdout=true&stderr=true'));
    assert.deepEqual(plain.frames[0], { channel: 2, data: 'bad\n' });
    const status = JSON.parse(plain.frames.find((f) => f.channel === 3)?.data ?? '') as {
      details: { causes: { message: string }[] };
    };
    assert.equal(status.details.causes[0]?.message, '7');

    const tty = await collect(open('p1', 'command=fail&command=2&stdout=true&tty=true'));
    assert.deepEqual(tty.frames[0], { channel: 1, data: 'bad\r\n' });
  });

  void it('answers pings with pongs during a command, and speaks v4 too', async () => {
    const ws = open('p1', 'command=sleep&command=300&stdout=true', 'v4.channel.k8s.io');
    const done = collect(ws);
    await new Promise((r) => ws.once('open', r));
    assert.equal(ws.protocol, 'v4.channel.k8s.io');
    const pong = new Promise<Buffer>((resolve) => ws.once('pong', resolve));
    ws.ping(Buffer.from('hb'));
    assert.equal((await pong).toString(), 'hb');
    const s = await done;
    assert.equal(s.frames.filter((f) => f.channel === 3).length, 1);
  });

  void it('refuses before the switch with the Status kubectl prints', async () => {
    const notFound = await refused(open('missing', 'command=true&stdout=true'));
    assert.equal(notFound, 404);
    const badProto = await refused(open('p1', 'command=true&stdout=true', 'channel.k8s.io'));
    assert.equal(badProto, 400);
    const noCommand = await refused(open('p1', 'stdout=true'));
    assert.equal(noCommand, 400);
    const noToken = await refused(
      new WebSocket(url('p1', 'command=true'), 'v5.channel.k8s.io', { ca }),
    );
    assert.equal(noToken, 401);
  });
});

function refused(ws: WebSocket): Promise<number> {
  return new Promise((resolve, reject) => {
    ws.on('unexpected-response', (_req, res) => {
      resolve(res.statusCode ?? 0);
      res.resume();
    });
    ws.on('open', () => reject(new Error('the upgrade was accepted')));
    ws.on('error', () => undefined);
  });
}

void describe('pod command emulation', () => {
  const ctx: PodExecContext = {
    cluster: 'cluster1',
    namespace: 'default',
    pod: 'x-wing-abc',
    ip: '127.1.0.5',
    dns: '127.1.128.10:53',
    env: { HOSTNAME: 'x-wing-abc', MESSAGE: 'hi' },
  };
  const exec = async (
    argv: string[],
    stdin?: string,
  ): Promise<{ code: number; out: string; err: string }> => {
    let out = '';
    let err = '';
    const code = await runPodCommand(argv, ctx, {
      stdout: (s) => (out += s.toString()),
      stderr: (s) => (err += s.toString()),
      stdin: stdin === undefined ? undefined : chunks([Buffer.from(stdin)]),
      signal: new AbortController().signal,
    });
    return { code, out, err };
  };

  void it('runs echo, env, hostname, cat of pod files and stdin, true and false', async () => {
    assert.deepEqual(await exec(['echo', 'a', 'b']), { code: 0, out: 'a b\n', err: '' });
    assert.equal((await exec(['env'])).out, 'HOSTNAME=x-wing-abc\nMESSAGE=hi\n');
    assert.equal((await exec(['hostname'])).out, 'x-wing-abc\n');
    assert.equal((await exec(['/bin/cat', '/etc/hostname'])).out, 'x-wing-abc\n');
    assert.match((await exec(['cat', '/etc/resolv.conf'])).out, /^nameserver 127\.1\.128\.10$/m);
    assert.equal((await exec(['cat'], 'piped')).out, 'piped');
    assert.equal((await exec(['true'])).code, 0);
    assert.equal((await exec(['false'])).code, 1);
    const missing = await exec(['cat', '/nope']);
    assert.equal(missing.code, 1);
    assert.equal(missing.err, "cat: can't open '/nope': No such file or directory\n");
  });

  void it('runs sh -c scripts with exit, && and ||; an unknown command exits 127', async () => {
    assert.equal((await exec(['sh', '-c', 'exit 3'])).code, 3);
    assert.deepEqual(await exec(['sh', '-c', 'false || echo "x  y" && exit 4']), {
      code: 4,
      out: 'x  y\n',
      err: '',
    });
    assert.deepEqual(await exec(['ps', 'aux']), { code: 127, out: '', err: 'sh: ps: not found\n' });
    assert.equal((await exec(['curl', '--bogus', 'x'])).code, 2);
    assert.equal((await exec(['sleep', 'abc'])).code, 1);
  });
});

// eslint-disable-next-line @typescript-eslint/require-await
async function* chunks(list: readonly Buffer[]): AsyncIterable<Buffer> {
  yield* list;
}
