import type { Duplex } from 'node:stream';
import type { Logger } from 'pino';
import { WebSocketServer, type RawData, type WebSocket } from 'ws';
import { errorMessage } from '../lib/errors.js';
import {
  Channel,
  EXEC_PROTOCOLS,
  execFailureStatus,
  exitStatus,
  frame,
  pickProtocol,
  unframe,
} from './channels.js';
import type { RequestContext, SubresourceHandler, UpgradeContext } from './handlers.js';
import { ApiError, badRequest, methodNotAllowed, type Status } from './status.js';

/**
 * `…/pods/P/exec` over WebSocket (`v5.channel.k8s.io`, `v4.channel.k8s.io`): the protocol
 * only. What a command does is the executor's: another domain runs it as the pod.
 */

export interface ExecRequest {
  readonly namespace: string;
  readonly pod: string;
  readonly container?: string | undefined;
  readonly command: readonly string[];
  readonly stdin: boolean;
  readonly tty: boolean;
}

export interface ExecIO {
  readonly stdout: (s: string | Buffer) => void;
  readonly stderr: (s: string | Buffer) => void;
  readonly stdin?: AsyncIterable<Buffer> | undefined;
  readonly signal: AbortSignal;
}

/** Runs the command; resolves with its exit code. */
export type ExecSession = (io: ExecIO) => Promise<number>;

/**
 * Checks the request before the protocol switch (an `ApiError` — pod not found, not
 * running, unknown container — is answered as a Status kubectl prints) and returns the
 * session to run once switched.
 */
export type PodExecutor = (req: ExecRequest) => Promise<ExecSession>;

const CLOSE_NORMAL = 1000;

export function execSubresource(executor: PodExecutor, log: Logger): SubresourceHandler {
  const wss = new WebSocketServer({
    noServer: true,
    // Only what kubectl can read: anything else would be a session it cannot decode.
    handleProtocols: (offered) => pickProtocol(offered) ?? false,
    perMessageDeflate: false,
  });
  return {
    resource: 'pods',
    name: 'exec',
    kind: 'PodExecOptions',
    verbs: ['create', 'get'],
    handle: (ctx: RequestContext) => {
      // A plain GET/POST: kubectl only execs through an upgrade.
      throw ctx.req.method === 'GET' || ctx.req.method === 'POST'
        ? badRequest(
            `exec needs a WebSocket upgrade with one of the subprotocols ${EXEC_PROTOCOLS.join(', ')}`,
          )
        : methodNotAllowed();
    },
    upgrade: (ctx: UpgradeContext) => {
      void upgrade(ctx, wss, executor, log);
    },
  };
}

async function upgrade(
  ctx: UpgradeContext,
  wss: WebSocketServer,
  executor: PodExecutor,
  log: Logger,
): Promise<void> {
  const { req, socket, head, url, target } = ctx;
  const isWebSocket = (req.headers.upgrade ?? '').toLowerCase() === 'websocket';
  let session: ExecSession;
  let request: ExecRequest;
  try {
    const offered = (req.headers['sec-websocket-protocol'] ?? '').split(',');
    if (!isWebSocket || pickProtocol(offered) === undefined) {
      // kubectl's SPDY fallback (or a client offering only older channel protocols).
      throw badRequest(
        `exec is served over WebSocket with the subprotocol ${EXEC_PROTOCOLS.join(' or ')} (kubectl 1.30 or later; 1.29 with KUBECTL_REMOTE_COMMAND_WEBSOCKETS=true); SPDY is not supported`,
      );
    }
    request = parseExecQuery(url, target.namespace ?? 'default', target.name ?? '');
    session = await executor(request);
  } catch (err) {
    const status =
      err instanceof ApiError
        ? err.toStatus()
        : new ApiError(500, 'InternalError', errorMessage(err)).toStatus();
    refuse(socket, status);
    log.debug({ url: req.url, code: status.code, message: status.message }, 'exec refused');
    return;
  }
  wss.handleUpgrade(req, socket, head, (ws) => {
    serveSession(ws, request, session, log);
  });
}

/** The query kubectl sends: repeated `command`, and `stdin`, `stdout`, `stderr`, `tty`. */
export function parseExecQuery(url: URL, namespace: string, pod: string): ExecRequest {
  const q = url.searchParams;
  const command = q.getAll('command');
  if (command.length === 0) {
    throw badRequest('you must specify at least 1 command');
  }
  const flag = (name: string): boolean => {
    const v = q.get(name);
    return v === 'true' || v === '1';
  };
  return {
    namespace,
    pod,
    container: q.get('container') ?? undefined,
    command,
    stdin: flag('stdin'),
    tty: flag('tty'),
  };
}

/** An async queue of stdin chunks, ended by the CLOSE channel or the connection's end. */
class StdinQueue implements AsyncIterable<Buffer> {
  private readonly chunks: Buffer[] = [];
  private ended = false;
  private wake: (() => void) | undefined;

  push(b: Buffer): void {
    if (this.ended) return;
    this.chunks.push(b);
    this.wake?.();
  }

  end(): void {
    this.ended = true;
    this.wake?.();
  }

  async *[Symbol.asyncIterator](): AsyncIterator<Buffer> {
    for (;;) {
      const next = this.chunks.shift();
      if (next !== undefined) {
        yield next;
        continue;
      }
      if (this.ended) return;
      await new Promise<void>((resolve) => (this.wake = resolve));
      this.wake = undefined;
    }
  }
}

function serveSession(
  ws: WebSocket,
  request: ExecRequest,
  session: ExecSession,
  log: Logger,
): void {
  const ac = new AbortController();
  const stdin = request.stdin ? new StdinQueue() : undefined;
  const v5 = ws.protocol === 'v5.channel.k8s.io';
  const send = (channel: number, data: string | Buffer): void => {
    if (ws.readyState !== ws.OPEN) return;
    const body = typeof data === 'string' ? Buffer.from(data) : data;
    if (body.length === 0) return;
    ws.send(frame(channel, body), { binary: true });
  };
  // A terminal turns "\n" into "\r\n" and has a single output stream.
  const tty = (s: string | Buffer): Buffer =>
    Buffer.from((typeof s === 'string' ? s : s.toString('utf8')).replace(/\r?\n/g, '\r\n'));
  ws.on('message', (data: RawData, isBinary: boolean) => {
    const buf = Buffer.isBuffer(data)
      ? data
      : Array.isArray(data)
        ? Buffer.concat(data)
        : Buffer.from(data);
    const f = unframe(isBinary ? buf : Buffer.from(buf));
    if (f === undefined) return;
    if (f.channel === Channel.Stdin) {
      if (request.tty && f.data.includes(0x04)) {
        // Ctrl-D on a terminal: what comes before it, then end of input.
        stdin?.push(f.data.subarray(0, f.data.indexOf(0x04)));
        stdin?.end();
      } else stdin?.push(Buffer.from(f.data));
    } else if (v5 && f.channel === Channel.Close && f.data[0] === Channel.Stdin) {
      stdin?.end();
    }
    // Resize (4): no terminal to resize.
  });
  ws.on('close', () => {
    ac.abort();
    stdin?.end();
  });
  ws.on('error', (err) => {
    log.debug({ err: errorMessage(err) }, 'exec connection error');
  });
  const started = Date.now();
  session({
    stdout: (s) => send(Channel.Stdout, request.tty ? tty(s) : s),
    stderr: (s) => send(request.tty ? Channel.Stdout : Channel.Stderr, request.tty ? tty(s) : s),
    stdin,
    signal: ac.signal,
  })
    .then(
      (code) => exitStatus(code),
      (err: unknown) => execFailureStatus(errorMessage(err)),
    )
    .then((status) => {
      log.debug(
        {
          pod: `${request.namespace}/${request.pod}`,
          command: request.command[0],
          ms: Date.now() - started,
          status: status['status'],
        },
        'exec finished',
      );
      send(Channel.Error, JSON.stringify(status));
      if (ws.readyState === ws.OPEN) ws.close(CLOSE_NORMAL);
    })
    .catch((err: unknown) => {
      log.warn({ err: errorMessage(err) }, 'exec session failed');
      ws.terminate();
    });
}

const REASONS: Readonly<Record<number, string>> = {
  400: 'Bad Request',
  401: 'Unauthorized',
  403: 'Forbidden',
  404: 'Not Found',
  500: 'Internal Server Error',
};

/** Answers an Upgrade request with a Status, on the raw socket (no switch). */
export function refuse(socket: Duplex, status: Status): void {
  const body = JSON.stringify(status);
  socket.end(
    `HTTP/1.1 ${status.code} ${REASONS[status.code] ?? 'Error'}\r\nContent-Type: application/json\r\n` +
      `Content-Length: ${Buffer.byteLength(body)}\r\nConnection: close\r\n\r\n${body}`,
  );
}
