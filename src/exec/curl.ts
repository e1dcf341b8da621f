import { request, type IncomingHttpHeaders } from 'node:http';
import { isIP } from 'node:net';
import { podSearchPath, resolveA } from '../dns/client.js';

/**
 * The `curl` that `clustermesh exec POD -- curl …` runs *as the pod*: names resolve
 * through the pod's cluster DNS with the pod's search path, and the connection leaves
 * from the pod IP, so the datapath sees (and the flow log records) the pod as the
 * source. Only what the walkthroughs need: http URLs, -s -S -i -v -m -H -X -d, with
 * curl's exit codes and error lines.
 */

export interface CurlArgs {
  readonly url: string;
  readonly silent: boolean;
  readonly showError: boolean;
  readonly include: boolean;
  readonly verbose: boolean;
  readonly maxTimeMs: number;
  readonly method?: string | undefined;
  readonly headers: readonly [string, string][];
  readonly data?: string | undefined;
}

/** curl's exit codes for the failures this curl can have. */
export const CurlExit = {
  UnsupportedProtocol: 1,
  BadUrl: 3,
  CouldNotResolve: 6,
  CouldNotConnect: 7,
  Timeout: 28,
  EmptyReply: 52,
  RecvError: 56,
} as const;

export class CurlError extends Error {
  constructor(
    readonly exitCode: number,
    message: string,
  ) {
    super(message);
    this.name = 'CurlError';
  }
}

export class CurlUsageError extends Error {}

export function parseCurlArgs(argv: readonly string[]): CurlArgs {
  const [prog, ...rest] = argv;
  if (prog !== 'curl') {
    throw new CurlUsageError(
      `exec runs "curl" inside the pod; ${JSON.stringify(prog ?? '')} is not available (try: -- curl -s URL)`,
    );
  }
  let url: string | undefined;
  let silent = false;
  let showError = false;
  let include = false;
  let verbose = false;
  let maxTimeMs = 10_000;
  let method: string | undefined;
  let data: string | undefined;
  const headers: [string, string][] = [];
  const value = (i: number, flag: string): string => {
    const v = rest[i];
    if (v === undefined) throw new CurlUsageError(`curl: option ${flag}: requires parameter`);
    return v;
  };
  for (let i = 0; i < rest.length; i++) {
    const a = rest[i] ?? '';
    if (a === '--silent') silent = true;
    else if (a === '--show-error') showError = true;
    else if (a === '--include') include = true;
    else if (a === '--verbose') verbose = true;
    else if (a === '-m' || a === '--max-time') {
      const secs = Number(value(++i, a));
      if (!Number.isFinite(secs) || secs <= 0) {
        throw new CurlUsageError(`curl: option ${a}: expected a positive number of seconds`);
      }
      maxTimeMs = secs * 1000;
    } else if (a === '-H' || a === '--header') {
      const h = value(++i, a);
      const colon = h.indexOf(':');
      if (colon <= 0) throw new CurlUsageError(`curl: option ${a}: expected "Name: value"`);
      headers.push([h.slice(0, colon).trim(), h.slice(colon + 1).trim()]);
    } else if (a === '-X' || a === '--request') method = value(++i, a);
    else if (a === '-d' || a === '--data') data = value(++i, a);
    else if (/^-[sSiv]+$/.test(a)) {
      for (const f of a.slice(1)) {
        if (f === 's') silent = true;
        else if (f === 'S') showError = true;
        else if (f === 'i') include = true;
        else verbose = true;
      }
    } else if (a.startsWith('-')) throw new CurlUsageError(`curl: option ${a}: is unknown`);
    else if (url === undefined) url = a;
    else throw new CurlUsageError('curl: only one URL is supported');
  }
  if (url === undefined) throw new CurlUsageError('curl: no URL specified');
  return { url, silent, showError, include, verbose, maxTimeMs, method, headers, data };
}

export interface CurlFrom {
  /** The pod's IP: the connection's source. */
  readonly sourceIP: string;
  readonly namespace: string;
  /** `ip:port` of the pod's cluster DNS. */
  readonly dns: string;
  /**
   * The pod's node decides on the connection before it is made (egress policy, as a
   * socket hook would): `dropped` means the packets would go nowhere.
   */
  readonly beforeConnect?:
    ((ip: string, port: number) => Promise<'allowed' | 'dropped'>) | undefined;
}

export interface CurlOutput {
  readonly stdout: (s: string) => void;
  readonly stderr: (s: string) => void;
}

/** Runs the request; resolves when the reply is out, throws CurlError with curl's exit code. */
export async function curlFrom(args: CurlArgs, from: CurlFrom, out: CurlOutput): Promise<void> {
  const target = parseUrl(args.url);
  let ip = target.hostname;
  if (isIP(ip) === 0) {
    try {
      const ips = await resolveA(target.hostname, {
        server: from.dns,
        search: podSearchPath(from.namespace),
        timeoutMs: Math.min(args.maxTimeMs, 5000),
        sourceIP: from.sourceIP,
        // curl's -m bounds the whole transfer, name resolution included.
        signal: AbortSignal.timeout(args.maxTimeMs),
      });
      const first = ips[0];
      if (first === undefined) throw new Error('no address');
      ip = first;
    } catch {
      throw new CurlError(CurlExit.CouldNotResolve, `Could not resolve host: ${target.hostname}`);
    }
  }
  const port = target.port === '' ? 80 : Number(target.port);
  if (args.verbose) out.stderr(`*   Trying ${ip}:${port} from ${from.sourceIP}...\n`);
  const started = performance.now();
  if ((await from.beforeConnect?.(ip, port)) === 'dropped') {
    // Dropped packets get no answer: the client times out, as it would under Cilium.
    await new Promise((r) => setTimeout(r, args.maxTimeMs));
    const ms = Math.round(performance.now() - started);
    throw new CurlError(CurlExit.Timeout, `Connection timed out after ${ms} milliseconds`);
  }
  await new Promise<void>((resolve, reject) => {
    const req = request(
      {
        host: ip,
        port,
        path: `${target.pathname}${target.search}`,
        method: args.method ?? (args.data === undefined ? 'GET' : 'POST'),
        localAddress: from.sourceIP,
        // One connection per run, as curl: Node's global agent would keep it alive and reuse
        // it, so every later request would land on the backend the first one was given.
        agent: false,
        headers: {
          host: target.host,
          'user-agent': 'curl/8 (clustermesh exec)',
          accept: '*/*',
          ...(args.data === undefined
            ? {}
            : { 'content-type': 'application/x-www-form-urlencoded' }),
          // The user's -H wins over every default, as with curl.
          ...Object.fromEntries(args.headers.map(([k, v]) => [k.toLowerCase(), v])),
        },
        timeout: args.maxTimeMs,
      },
      (res) => {
        if (args.include || args.verbose) {
          const head = `HTTP/${res.httpVersion} ${res.statusCode ?? 0} ${res.statusMessage ?? ''}\r\n${headerLines(res.headers)}\r\n`;
          if (args.include) out.stdout(head);
          else out.stderr(head.replace(/^/gm, '< '));
        }
        res.setEncoding('utf8');
        res.on('data', (chunk: string) => {
          out.stdout(chunk);
        });
        res.on('end', () => {
          resolve();
        });
        res.on('error', (err) => {
          reject(new CurlError(CurlExit.RecvError, `Recv failure: ${err.message}`));
        });
      },
    );
    req.on('timeout', () => {
      const ms = Math.round(performance.now() - started);
      req.destroy(
        new CurlError(
          CurlExit.Timeout,
          `Operation timed out after ${ms} milliseconds with 0 bytes received`,
        ),
      );
    });
    req.on('error', (err: NodeJS.ErrnoException) => {
      if (err instanceof CurlError) {
        reject(err);
        return;
      }
      const ms = Math.round(performance.now() - started);
      if (err.code === 'ECONNREFUSED' || err.code === 'EADDRNOTAVAIL') {
        reject(
          new CurlError(
            CurlExit.CouldNotConnect,
            `Failed to connect to ${target.hostname} port ${port} after ${ms} ms: ${err.code === 'ECONNREFUSED' ? 'Connection refused' : 'Address not available'}`,
          ),
        );
      } else if (err.code === 'ECONNRESET') {
        reject(
          new CurlError(
            err.message.includes('socket hang up') ? CurlExit.EmptyReply : CurlExit.RecvError,
            err.message.includes('socket hang up')
              ? 'Empty reply from server'
              : 'Recv failure: Connection reset by peer',
          ),
        );
      } else {
        reject(new CurlError(CurlExit.RecvError, err.message));
      }
    });
    req.end(args.data);
  });
}

function parseUrl(text: string): URL {
  const withScheme = /^[a-z][a-z0-9+.-]*:\/\//i.test(text) ? text : `http://${text}`;
  let url: URL;
  try {
    url = new URL(withScheme);
  } catch {
    throw new CurlError(CurlExit.BadUrl, `URL rejected: Malformed input to a URL function`);
  }
  if (url.protocol !== 'http:') {
    throw new CurlError(
      CurlExit.UnsupportedProtocol,
      `Protocol "${url.protocol.replace(/:$/, '')}" not supported`,
    );
  }
  return url;
}

function headerLines(headers: IncomingHttpHeaders): string {
  let s = '';
  for (const [k, v] of Object.entries(headers)) {
    if (v === undefined) continue;
    for (const one of Array.isArray(v) ? v : [v]) s += `${k}: ${one}\r\n`;
  }
  return s;
}
